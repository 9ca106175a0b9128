//! gateway library (placeholder).
