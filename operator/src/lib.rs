//! The hds operator: from hds.dev resources to the Kubernetes objects that run them.
//!
//! [`desired`] is the pure part: a resource's spec in, typed objects out. [`controller`]
//! applies them, provisions [`database`]s and writes status; [`identity`] makes the
//! Workspace's credentials.

pub mod controller;
pub mod database;
pub mod desired;
pub mod identity;
pub mod leader;
pub mod server;
