//! The Zoom side of the sandbox: OAuth server, the DEX APIs, the
//! Marketplace API, webhooks, the control API, consent pages, and the state
//! they share. The ServiceNow instance is its sibling (`servicenow/`); what
//! both use (`random`, the server spawner) sits at the crate root.

pub(crate) mod api;
pub(crate) mod control;
pub mod data;
pub(crate) mod marketplace;
pub(crate) mod oauth;
pub(crate) mod pages;
pub mod redirect;
pub mod state;
pub mod webhooks;
