//! session-core (placeholder; being written).
