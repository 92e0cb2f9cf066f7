//! Who is calling, and may they do this: the identity layer every data-plane service shares.
//!
//! - [`token`]: a bearer token in, a [`Principal`] out, or the reason it was refused. Tokens are
//!   JWTs signed with RS256, ES256 or PS256 by a trusted authority, whose keys come from its
//!   OpenID discovery document and are cached by `kid` ([`jwks`]).
//! - [`issuer`]: a Workspace's own issuer: discovery, JWKS and the client-credentials token
//!   endpoint, signing RFC 9068 access tokens.
//! - [`audit`]: one audit record per request, in a stable JSON schema, and its log sink.
//! - [`actions`]: Azure's built-in data roles and the data actions they grant; each endpoint of
//!   a service names the one action it needs.

pub mod actions;
pub mod audit;
pub mod issuer;
pub mod jwks;
pub mod smart;
#[cfg(feature = "testing")]
pub mod testing;
pub mod token;
mod verified;

pub use actions::{DataAction, Role};
pub use token::{
    AuthError, AuthorityConfig, Principal, SmartApplication, Validator, ValidatorConfig,
};
