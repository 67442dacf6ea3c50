//! connapp end-to-end tests: the real binary, real dynamic plugins, real
//! out-of-tree builds. One test binary, one module per area.

mod support;

mod agent;
mod architecture;
mod cli;
mod corpus;
mod crash;
mod fleet;
mod interop;
mod json;
mod newcomer;
mod plugins;
mod raft;
mod rotate;
mod schedule;
mod secrets;
mod servicenow;
mod terminal;
mod tokens;
mod zoomapp;
