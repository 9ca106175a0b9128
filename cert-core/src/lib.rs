//! cert-core (placeholder; being written).
