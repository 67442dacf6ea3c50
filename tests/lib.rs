//! Shared helpers live in e2e/; this library is intentionally empty.
