//! The hds operator: from hds.dev resources to the Kubernetes objects that run them.
//!
//! [`desired`] is the pure part: a resource's spec in, typed objects out. Applying them,
//! the controllers, databases and identities build on it.

pub mod desired;
