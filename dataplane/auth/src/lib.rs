//! Who is calling, and may they do this: the identity layer every data-plane service shares.
//!
//! - [`token`]: a bearer token in, a [`Principal`] out, or the reason it was refused. Tokens are
//!   JWTs signed with RS256, ES256 or PS256 by a trusted authority, whose keys come from its
//!   OpenID discovery document and are cached by `kid` ([`jwks`]).
//! - [`actions`]: Azure's built-in data roles and the data actions they grant; each endpoint of
//!   a service names the one action it needs.

pub mod actions;
pub mod jwks;
#[cfg(feature = "testing")]
pub mod testing;
pub mod token;

pub use actions::{DataAction, Role};
pub use token::{AuthError, AuthorityConfig, Principal, Validator, ValidatorConfig};
