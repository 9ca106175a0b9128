//! The gateway binary (placeholder).
fn main() {}
