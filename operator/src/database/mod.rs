//! The databases the operator provisions for a FhirService or DicomService (MedTech keeps
//! none): naming, passwords and connection URLs here, the SQL of the `adminSecretRef` path in
//! [`admin`], and the CloudNativePG objects of the `cnpg` path in [`cnpg`].
//!
//! Nothing here decides *when* to provision or drop: the controller does, from the spec's
//! deletion policy. `Retain` simply means it never calls [`admin::drop`].

pub mod admin;
pub mod cnpg;
#[cfg(test)]
mod tests;

pub use admin::{Dropped, PasswordMode, Provisioned};

use base64::Engine as _;
use hds_crds::common::CnpgRef;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// PostgreSQL silently truncates longer identifiers (NAMEDATALEN - 1), which would make two
/// long names collide; we truncate ourselves, with a hash, before it does.
pub const MAX_IDENTIFIER_LEN: usize = 63;

/// The database of one service and the role owning it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DatabaseNames {
    pub database: String,
    pub role: String,
}

/// `hds_<namespace>_<name>`, lowered, anything outside `[a-z0-9_]` replaced by `_`, at most 63
/// bytes; the role has the same name.
///
/// Kubernetes names may contain `-` and `.`, which both become `_`, so the plain form is not
/// one-to-one: namespace `a-b` with service `c` and namespace `a` with service `b-c` would
/// both be `hds_a_b_c`, one tenant's database being handed to another. Whenever a character
/// had to be replaced (or the name is too long) the name therefore ends in `_` and 8 hex
/// digits of the SHA-256 of `<namespace>/<name>`, which is unique because `/` appears in
/// neither. Names made only of `[a-z0-9]` keep the readable plain form.
pub fn database_names(namespace: &str, name: &str) -> DatabaseNames {
    let raw = format!("hds_{namespace}_{name}");
    let clean: String = raw
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '_' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '_',
        })
        .collect();
    let database = if clean == raw && clean.len() <= MAX_IDENTIFIER_LEN {
        clean
    } else {
        let digest = Sha256::digest(format!("{namespace}/{name}").as_bytes());
        let suffix: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        // `clean` is ASCII, so any byte index is a char boundary.
        let keep = clean.len().min(MAX_IDENTIFIER_LEN - 1 - suffix.len());
        format!("{}_{suffix}", &clean[..keep])
    };
    DatabaseNames {
        role: database.clone(),
        database,
    }
}

/// The names of a CloudNativePG database: the `database` and `owner` the CnpgRef spells out,
/// else the derived ones. The owner defaults to the database name, as the CRD documents.
/// Explicit names are taken verbatim: the user chose them, and CNPG quotes identifiers.
pub fn cnpg_names(namespace: &str, name: &str, cnpg: &CnpgRef) -> DatabaseNames {
    let database = cnpg
        .database
        .clone()
        .unwrap_or_else(|| database_names(namespace, name).database);
    let role = cnpg.owner.clone().unwrap_or_else(|| database.clone());
    DatabaseNames { database, role }
}

/// 32 random bytes from the OS, base64url without padding (43 characters of
/// `[A-Za-z0-9_-]`), so the password never needs escaping in a URL or an SQL literal.
pub fn generate_password() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Percent-encodes everything but RFC 3986's unreserved characters. Used for each part we put
/// into a URL ourselves: `url`'s setters leave `%` alone, so a password holding `%41` would
/// come back as `A`.
pub(crate) fn percent_encode(s: &str) -> String {
    const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
}

/// The service's URL: the admin URL's scheme, hosts, ports and query (sslmode and the like)
/// with the role, its password and the database put in.
///
/// Query parameters `user`, `password` and `dbname` are dropped: libpq and tokio-postgres let
/// them override the URL's own parts, which would log the service in as the admin.
pub fn connection_url(
    admin_url: &str,
    names: &DatabaseNames,
    password: &str,
) -> Result<String, DatabaseError> {
    let parts = AdminUrl::parse(admin_url)?;
    let query: Vec<&str> = parts
        .query
        .map(|q| {
            q.split('&')
                .filter(|kv| !kv.is_empty())
                .filter(|kv| {
                    let key = kv.split('=').next().unwrap_or_default();
                    !matches!(key, "user" | "password" | "dbname")
                })
                .collect()
        })
        .unwrap_or_default();
    let mut url = format!(
        "{}://{}:{}@{}/{}",
        parts.scheme,
        percent_encode(&names.role),
        percent_encode(password),
        parts.hosts,
        percent_encode(&names.database),
    );
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query.join("&"));
    }
    Ok(url)
}

/// The pieces of a `postgres://` admin URL we reuse, split the way tokio-postgres splits it
/// (the `url` crate refuses libpq's multi-host form `h1:5432,h2:5432`).
pub(crate) struct AdminUrl<'a> {
    pub scheme: &'a str,
    /// Everything between the credentials and the path: one or more `host[:port]`.
    pub hosts: &'a str,
    pub query: Option<&'a str>,
    /// The admin's password as written in the URL (still percent-encoded), to redact.
    pub password: Option<&'a str>,
}

impl<'a> AdminUrl<'a> {
    pub fn parse(url: &'a str) -> Result<Self, DatabaseError> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(DatabaseError::InvalidAdminUrl(
                "it must be a postgres:// or postgresql:// URL".into(),
            ));
        };
        if scheme != "postgres" && scheme != "postgresql" {
            return Err(DatabaseError::InvalidAdminUrl(format!(
                "the scheme is {scheme:?}; it must be postgres:// or postgresql://"
            )));
        }
        let (head, query) = match rest.split_once('?') {
            Some((h, q)) => (h, Some(q)),
            None => (rest, None),
        };
        let (credentials, server) = match head.rfind('@') {
            Some(at) => (Some(&head[..at]), &head[at + 1..]),
            None => (None, head),
        };
        let hosts = server.split('/').next().unwrap_or_default();
        let password = credentials.and_then(|c| c.split_once(':')).map(|(_, p)| p);
        if let Some(sslmode) = requested_tls(query) {
            return Err(DatabaseError::TlsUnsupported { sslmode });
        }
        // Let the client that will connect judge the rest, so that what we accept it accepts.
        if let Err(e) = url.parse::<tokio_postgres::Config>() {
            let message = redact(&describe(&e), &[password.unwrap_or_default()]);
            return Err(DatabaseError::InvalidAdminUrl(message));
        }
        Ok(AdminUrl {
            scheme,
            hosts,
            query,
            password,
        })
    }
}

/// The server's own message when there is one ("permission denied to create role"), else the
/// client's ("error connecting to server: Connection refused").
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

/// The TLS mode the URL's query asks for, when it is one we cannot honour. tokio-postgres
/// with `NoTls` would fail on `require` with a vaguer message and refuses `verify-*` as an
/// unknown value; either way, never fall back to plaintext behind the user's back.
fn requested_tls(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "sslmode")
        .map(|(_, v)| v.to_ascii_lowercase())
        .filter(|v| matches!(v.as_str(), "require" | "verify-ca" | "verify-full"))
}

/// Replaces each non-empty secret, raw and percent-decoded, by `***`: error texts end up in
/// conditions and events, which many more people can read than the Secret.
pub(crate) fn redact(message: &str, secrets: &[&str]) -> String {
    let mut out = message.to_string();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret, "***");
        let decoded = percent_decode(secret);
        if !decoded.is_empty() {
            out = out.replace(&decoded, "***");
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Why provisioning failed, in words a condition message can carry. No variant ever holds a
/// password.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("invalid admin URL: {0}")]
    InvalidAdminUrl(String),
    #[error(
        "the admin URL asks for TLS (sslmode={sslmode}), which hds's PostgreSQL client does not \
         support yet; use sslmode=disable or sslmode=prefer"
    )]
    TlsUnsupported { sslmode: String },
    #[error("cannot reach PostgreSQL at {host}: {message}")]
    Unreachable { host: String, message: String },
    #[error("PostgreSQL at {host} refused the admin login: {message}")]
    AuthenticationFailed { host: String, message: String },
    #[error(
        "the admin role may not {action}: {message} (it needs CREATEROLE and CREATEDB, or to \
         be a superuser)"
    )]
    PermissionDenied { action: String, message: String },
    #[error("{action} failed: {message}")]
    Sql {
        action: String,
        /// The SQLSTATE, when the server sent one.
        code: Option<String>,
        message: String,
    },
}

impl DatabaseError {
    /// The CamelCase reason of the `DatabaseReady` condition.
    pub fn reason(&self) -> &'static str {
        match self {
            DatabaseError::InvalidAdminUrl(_) | DatabaseError::TlsUnsupported { .. } => {
                "InvalidAdminUrl"
            }
            DatabaseError::Unreachable { .. } => "AdminUnreachable",
            DatabaseError::AuthenticationFailed { .. } => "AdminAuthenticationFailed",
            DatabaseError::PermissionDenied { .. } => "AdminPermissionDenied",
            DatabaseError::Sql { .. } => "DatabaseError",
        }
    }

    /// Whether trying again later may help: the server or the network may come back, while a
    /// bad URL or a missing privilege needs a person.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            DatabaseError::Unreachable { .. } | DatabaseError::Sql { .. }
        )
    }
}

/// Names, URLs and errors; the SQL tests are in `tests.rs`.
#[cfg(test)]
mod pure_tests {
    use pretty_assertions::assert_eq;
    use sha2::{Digest, Sha256};

    use super::admin::{quote_ident, quote_literal};
    use super::*;

    #[test]
    fn names_are_prefixed_and_keep_plain_kubernetes_names_readable() {
        let names = database_names("team1", "fhir");
        assert_eq!(names.database, "hds_team1_fhir");
        assert_eq!(names.role, names.database);
    }

    #[test]
    fn replaced_characters_add_a_hash_so_namespaces_cannot_collide() {
        let a = database_names("a-b", "c");
        let b = database_names("a", "b-c");
        assert!(a.database.starts_with("hds_a_b_c_"), "{}", a.database);
        assert!(b.database.starts_with("hds_a_b_c_"), "{}", b.database);
        assert_ne!(a.database, b.database);
        assert_eq!(
            database_names("ns", "my.svc").database.len(),
            "hds_ns_my_svc_".len() + 8
        );
        for names in [&a, &b, &database_names("NS", "Üx y")] {
            assert!(
                names
                    .database
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'),
                "{}",
                names.database
            );
        }
        // Deterministic: the controller derives the same names on every reconcile.
        assert_eq!(database_names("a-b", "c"), a);
    }

    #[test]
    fn long_names_are_cut_to_63_bytes_and_stay_distinct() {
        let long = "x".repeat(70);
        let one = database_names("ns", &format!("{long}1"));
        let two = database_names("ns", &format!("{long}2"));
        assert_eq!(one.database.len(), MAX_IDENTIFIER_LEN);
        assert_eq!(two.database.len(), MAX_IDENTIFIER_LEN);
        assert_ne!(one.database, two.database);
        let digest = Sha256::digest(format!("ns/{long}1").as_bytes());
        let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        assert!(
            one.database.ends_with(&format!("_{hex}")),
            "{}",
            one.database
        );
        assert!(one.database.starts_with("hds_ns_xxx"));
        // Exactly 63 plain bytes still fit as they are.
        let fits = "y".repeat(MAX_IDENTIFIER_LEN - "hds_ns_".len());
        assert_eq!(
            database_names("ns", &fits).database,
            format!("hds_ns_{fits}")
        );
    }

    #[test]
    fn a_cnpg_ref_may_name_database_and_owner() {
        let mut cnpg = hds_crds::common::CnpgRef {
            cluster_name: "pg".into(),
            database: None,
            owner: None,
        };
        assert_eq!(
            cnpg_names("ns", "fhir", &cnpg),
            database_names("ns", "fhir")
        );
        cnpg.database = Some("records".into());
        let names = cnpg_names("ns", "fhir", &cnpg);
        assert_eq!(
            (names.database.as_str(), names.role.as_str()),
            ("records", "records")
        );
        cnpg.owner = Some("app".into());
        let names = cnpg_names("ns", "fhir", &cnpg);
        assert_eq!(
            (names.database.as_str(), names.role.as_str()),
            ("records", "app")
        );
    }

    #[test]
    fn generated_passwords_are_43_url_safe_characters_and_differ() {
        let one = generate_password();
        let two = generate_password();
        assert_eq!(one.len(), 43);
        assert!(
            one.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_ne!(one, two);
        assert_eq!(percent_encode(&one), one, "nothing to escape in a URL");
    }

    #[test]
    fn the_service_url_keeps_the_server_and_query_and_swaps_the_credentials() {
        let names = database_names("team", "fhir");
        let admin = "postgresql://admin:s3cret@db.example:6543/postgres?sslmode=disable&user=admin\
                 &application_name=x&password=s3cret&dbname=postgres";
        let url = connection_url(admin, &names, "p@ss:w/rd%41 'x'").unwrap();
        assert_eq!(
            url,
            "postgresql://hds_team_fhir:p%40ss%3Aw%2Frd%2541%20%27x%27@db.example:6543/hds_team_fhir\
         ?sslmode=disable&application_name=x"
        );
        let config: tokio_postgres::Config = url.parse().unwrap();
        assert_eq!(config.get_user(), Some("hds_team_fhir"));
        assert_eq!(config.get_password(), Some(&b"p@ss:w/rd%41 'x'"[..]));
        assert_eq!(config.get_dbname(), Some("hds_team_fhir"));
        assert_eq!(config.get_ports(), &[6543]);

        // libpq's multi-host form, and a URL without credentials or path.
        let multi = connection_url("postgres://h1:5432,h2:5433/db", &names, "pw").unwrap();
        assert_eq!(
            multi,
            "postgres://hds_team_fhir:pw@h1:5432,h2:5433/hds_team_fhir"
        );
        let bare = connection_url("postgres://localhost", &names, "pw").unwrap();
        assert_eq!(bare, "postgres://hds_team_fhir:pw@localhost/hds_team_fhir");
    }

    #[test]
    fn a_non_postgres_admin_url_is_refused_without_echoing_it() {
        let names = database_names("team", "fhir");
        for bad in [
            "mysql://root:hunter2@db/x",
            "host=db user=root password=hunter2",
            "postgres://root:hunter2@db:notaport/x",
        ] {
            let err = connection_url(bad, &names, "pw").unwrap_err();
            assert_eq!(err.reason(), "InvalidAdminUrl", "{bad}: {err}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
        let err = connection_url("mysql://db/x", &names, "pw").unwrap_err();
        assert!(err.to_string().contains("postgres://"), "{err}");
    }

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(quote_ident("plain"), "\"plain\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(quote_literal("pw"), "'pw'");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\'b"), "E'a\\\\''b'");
    }

    #[test]
    fn reasons_are_condition_reasons() {
        let sql = DatabaseError::Sql {
            action: "x".into(),
            code: None,
            message: "y".into(),
        };
        assert_eq!(sql.reason(), "DatabaseError");
        let denied = DatabaseError::PermissionDenied {
            action: "create the role".into(),
            message: "permission denied to create role".into(),
        };
        assert_eq!(denied.reason(), "AdminPermissionDenied");
        assert!(denied.to_string().contains("CREATEROLE"));
    }
}
