//! The `adminSecretRef` path: a role and a database per service on a PostgreSQL server the
//! operator reaches with an admin URL, in real SQL.
//!
//! Every function connects, does its work and disconnects: reconciles are rare, and holding a
//! pool per admin Secret would mean tracking when Secrets change.

use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls};

use super::{AdminUrl, DatabaseError, DatabaseNames, describe, redact};

/// Whether an existing role's password is replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordMode {
    /// Set the password only when creating the role: the Secret holding it is intact.
    IfCreated,
    /// Set it either way: the caller generated a new one because the Secret holding the old
    /// one was lost.
    Reset,
}

/// What [`ensure`] changed; all false means nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Provisioned {
    pub created_role: bool,
    pub created_database: bool,
    pub password_set: bool,
}

impl Provisioned {
    pub fn changed(&self) -> bool {
        self.created_role || self.created_database || self.password_set
    }
}

/// What [`drop`] found and removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    pub dropped_database: bool,
    pub dropped_role: bool,
}

/// Makes the role and the database exist, the database owned by the role and closed to
/// everyone else. Idempotent: a second call with the same arguments changes nothing and says
/// so. Safe against another operator replica doing the same at the same moment.
pub async fn ensure(
    admin_url: &str,
    names: &DatabaseNames,
    password: &str,
    mode: PasswordMode,
) -> Result<Provisioned, DatabaseError> {
    let admin = Admin::connect(admin_url, password).await?;
    let role = quote_ident(&names.role);
    let database = quote_ident(&names.database);
    let literal = quote_literal(password);
    let mut done = Provisioned::default();

    let mut role_exists = admin.role_exists(&names.role).await?;
    if !role_exists {
        // CREATE ROLE takes no bind parameters, hence the quoted literal.
        let create = format!("CREATE ROLE {role} LOGIN PASSWORD {literal}");
        match admin.client.batch_execute(&create).await {
            Ok(()) => {
                done.created_role = true;
                done.password_set = true;
            }
            // Another replica created it between our check and our CREATE.
            Err(e) if is_duplicate(&e, &SqlState::DUPLICATE_OBJECT) => role_exists = true,
            Err(e) => return Err(admin.error("create the role", e)),
        }
    }
    if role_exists && mode == PasswordMode::Reset {
        let alter = format!("ALTER ROLE {role} WITH LOGIN PASSWORD {literal}");
        admin.execute("set the role's password", &alter).await?;
        done.password_set = true;
    }

    if let Some(owner) = admin.database_owner(&names.database).await? {
        // Someone else's database under our name: never hand it to this service.
        if owner != names.role {
            return Err(DatabaseError::Sql {
                action: "check the database's owner".into(),
                code: None,
                message: format!(
                    "database {} exists and is owned by {owner}, not {}",
                    names.database, names.role
                ),
            });
        }
    } else {
        admin.become_member_of(&names.role, &role).await?;
        // CREATE DATABASE cannot run in a transaction block and has no IF NOT EXISTS.
        let create = format!("CREATE DATABASE {database} OWNER {role}");
        match admin.client.batch_execute(&create).await {
            Ok(()) => done.created_database = true,
            Err(e) if is_duplicate(&e, &SqlState::DUPLICATE_DATABASE) => {}
            Err(e) => return Err(admin.error("create the database", e)),
        }
    }
    // Every role may connect to a new database through PUBLIC; on a shared server that is
    // every other tenant. Repeated each time so a database that predates us is closed too.
    let revoke = format!("REVOKE ALL ON DATABASE {database} FROM PUBLIC");
    admin.execute("revoke PUBLIC's access", &revoke).await?;
    Ok(done)
}

/// For the `Delete` deletion policy: drops the database (ending its sessions) and the role.
/// A second call finds nothing and reports so.
pub async fn drop(admin_url: &str, names: &DatabaseNames) -> Result<Dropped, DatabaseError> {
    let admin = Admin::connect(admin_url, "").await?;
    // What existed when we looked: a replica dropping at the same moment makes both say so,
    // which is harmless; IF EXISTS keeps the loser from failing.
    let done = Dropped {
        dropped_database: admin.database_exists(&names.database).await?,
        dropped_role: admin.role_exists(&names.role).await?,
    };
    if done.dropped_database {
        // FORCE (PostgreSQL 13+) ends the service's sessions, which would otherwise block it.
        let sql = format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(&names.database)
        );
        admin.execute("drop the database", &sql).await?;
    }
    if done.dropped_role {
        let sql = format!("DROP ROLE IF EXISTS {}", quote_ident(&names.role));
        admin.execute("drop the role", &sql).await?;
    }
    Ok(done)
}

/// Whether the service's database exists.
pub async fn exists(admin_url: &str, names: &DatabaseNames) -> Result<bool, DatabaseError> {
    Admin::connect(admin_url, "")
        .await?
        .database_exists(&names.database)
        .await
}

/// An SQL identifier, quoted: `"` around, inner `"` doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// An SQL string literal, quoted as PostgreSQL's own `quote_literal` does: `'` doubled, and
/// with backslashes doubled under `E''` so the result means the same whatever
/// `standard_conforming_strings` says.
pub fn quote_literal(value: &str) -> String {
    let quoted = value.replace('\'', "''");
    if quoted.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

fn is_duplicate(e: &tokio_postgres::Error, expected: &SqlState) -> bool {
    // Two concurrent creators can also collide on the catalog's unique index.
    matches!(e.code(), Some(c) if c == expected || *c == SqlState::UNIQUE_VIOLATION)
}

/// One admin session, and what it needs to word errors without leaking secrets.
struct Admin {
    client: Client,
    task: tokio::task::JoinHandle<()>,
    secrets: Vec<String>,
}

impl Drop for Admin {
    fn drop(&mut self) {
        // The connection task ends once the client is gone; do not leave it behind on error.
        self.task.abort();
    }
}

impl Admin {
    /// `service_password` is only passed so that no error message can ever carry it.
    async fn connect(admin_url: &str, service_password: &str) -> Result<Self, DatabaseError> {
        let parts = AdminUrl::parse(admin_url)?;
        let admin_password = parts.password.unwrap_or_default().to_string();
        let secrets = vec![admin_password, service_password.to_string()];
        let mut config: Config = admin_url.parse().map_err(|e: tokio_postgres::Error| {
            DatabaseError::InvalidAdminUrl(redact_all(&e.to_string(), &secrets))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("hds-operator");
        }
        let host = describe_hosts(&config);
        let (client, connection) = config
            .connect(NoTls)
            .await
            .map_err(|e| connect_error(&host, &e, &secrets))?;
        let task = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Admin {
            client,
            task,
            secrets,
        })
    }

    async fn role_exists(&self, role: &str) -> Result<bool, DatabaseError> {
        let sql = "SELECT 1 FROM pg_roles WHERE rolname = $1";
        match self.client.query_opt(sql, &[&role]).await {
            Ok(row) => Ok(row.is_some()),
            Err(e) => Err(self.error("look up the role", e)),
        }
    }

    async fn database_owner(&self, database: &str) -> Result<Option<String>, DatabaseError> {
        let sql = "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1";
        match self.client.query_opt(sql, &[&database]).await {
            Ok(row) => Ok(row.map(|r| r.get(0))),
            Err(e) => Err(self.error("look up the database", e)),
        }
    }

    async fn database_exists(&self, database: &str) -> Result<bool, DatabaseError> {
        let sql = "SELECT 1 FROM pg_database WHERE datname = $1";
        match self.client.query_opt(sql, &[&database]).await {
            Ok(row) => Ok(row.is_some()),
            Err(e) => Err(self.error("look up the database", e)),
        }
    }

    /// `CREATE DATABASE .. OWNER r` needs the admin to be able to act as `r`. A superuser can;
    /// a CREATEROLE admin on PostgreSQL 16+ only holds ADMIN OPTION on the roles it created
    /// (unless `createrole_self_grant` says otherwise), so it grants itself membership.
    async fn become_member_of(&self, role: &str, quoted: &str) -> Result<(), DatabaseError> {
        let sql = "SELECT rolsuper OR pg_has_role(current_user, $1, 'MEMBER') \
                   FROM pg_roles WHERE rolname = current_user";
        let can = match self.client.query_opt(sql, &[&role]).await {
            Ok(row) => row.is_some_and(|r| r.get::<_, bool>(0)),
            Err(e) => return Err(self.error("check the admin's membership", e)),
        };
        if !can {
            let grant = format!("GRANT {quoted} TO CURRENT_USER");
            self.execute("grant the admin membership in the role", &grant)
                .await?;
        }
        Ok(())
    }

    async fn execute(&self, action: &str, sql: &str) -> Result<(), DatabaseError> {
        self.client
            .batch_execute(sql)
            .await
            .map_err(|e| self.error(action, e))
    }

    fn error(&self, action: &str, e: tokio_postgres::Error) -> DatabaseError {
        let message = redact_all(&describe(&e), &self.secrets);
        match e.code() {
            Some(c) if *c == SqlState::INSUFFICIENT_PRIVILEGE => DatabaseError::PermissionDenied {
                action: action.into(),
                message,
            },
            code => DatabaseError::Sql {
                action: action.into(),
                code: code.map(|c| c.code().to_string()),
                message,
            },
        }
    }
}

fn describe_hosts(config: &Config) -> String {
    use tokio_postgres::config::Host;
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                Host::Unix(path) => path.display().to_string(),
            };
            // tokio-postgres repeats a lone port for every host.
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect();
    if hosts.is_empty() {
        "localhost:5432".into()
    } else {
        hosts.join(",")
    }
}

fn connect_error(host: &str, e: &tokio_postgres::Error, secrets: &[String]) -> DatabaseError {
    let message = redact_all(&describe(e), secrets);
    let host = host.to_string();
    match e.code() {
        // Class 28: invalid authorization specification (bad password, no pg_hba entry).
        Some(c) if c.code().starts_with("28") => {
            DatabaseError::AuthenticationFailed { host, message }
        }
        Some(c) if *c == SqlState::INVALID_CATALOG_NAME => DatabaseError::InvalidAdminUrl(format!(
            "the database it names does not exist on {host}: {message}"
        )),
        _ => DatabaseError::Unreachable { host, message },
    }
}

fn redact_all(message: &str, secrets: &[String]) -> String {
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    redact(message, &secrets)
}
