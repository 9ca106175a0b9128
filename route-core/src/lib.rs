//! route-core (placeholder; being written).
