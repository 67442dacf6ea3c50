//! End-to-end tests for connapp live in `e2e/` (one test binary, many
//! modules). They build the real binary, the real dynamic plugins and the
//! out-of-tree plugins, then drive them as a user would. This library is
//! empty on purpose.
