//! The admin path against the real PostgreSQL of `hds_common::db::test_admin_url()`. Each
//! test works on names of its own and removes them again, even when it fails.

use pretty_assertions::assert_eq;
use rand::Rng;
use sha2::{Digest, Sha256};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use super::admin::{self, PasswordMode, Provisioned, quote_ident};
use super::*;

fn admin_url() -> String {
    hds_common::db::test_admin_url()
}

/// Names no other test (or run) uses.
fn unique_names() -> DatabaseNames {
    let suffix: u32 = rand::thread_rng().r#gen();
    database_names(&format!("t{suffix:08x}"), "svc")
}

/// Drops the test's database and roles when the test ends, passed or not.
struct Cleanup {
    names: DatabaseNames,
    roles: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let names = self.names.clone();
        let roles = std::mem::take(&mut self.roles);
        // Drop cannot await, and the test's runtime may be unwinding: use a runtime of our own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let _ = admin::drop(&admin_url(), &names).await;
                let (client, conn) = tokio_postgres::connect(&admin_url(), NoTls).await?;
                tokio::spawn(conn);
                for role in roles {
                    let _ = client
                        .batch_execute(&format!("DROP ROLE IF EXISTS {}", quote_ident(&role)))
                        .await;
                }
                Ok::<_, tokio_postgres::Error>(())
            })
        })
        .join();
    }
}

fn cleanup(names: &DatabaseNames) -> Cleanup {
    Cleanup {
        names: names.clone(),
        roles: Vec::new(),
    }
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

async fn superuser() -> tokio_postgres::Client {
    connect(&admin_url())
        .await
        .expect("the test PostgreSQL must be reachable (HDS_TEST_POSTGRES_URL)")
}

const CREATED: Provisioned = Provisioned {
    created_role: true,
    created_database: true,
    password_set: true,
};

#[tokio::test]
async fn ensure_creates_role_and_database_that_the_service_url_can_use() {
    let names = unique_names();
    let _cleanup = cleanup(&names);
    let password = generate_password();
    let done = admin::ensure(&admin_url(), &names, &password, PasswordMode::IfCreated)
        .await
        .unwrap();
    assert_eq!(done, CREATED);
    assert!(admin::exists(&admin_url(), &names).await.unwrap());

    let url = connection_url(&admin_url(), &names, &password).unwrap();
    let service = connect(&url).await.unwrap();
    service
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let row = service
        .query_one("SELECT current_user::text, current_database()::text", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), names.role);
    assert_eq!(row.get::<_, String>(1), names.database);
}

#[tokio::test]
async fn a_second_ensure_changes_nothing_and_keeps_the_data() {
    let names = unique_names();
    let _cleanup = cleanup(&names);
    let password = generate_password();
    let first = admin::ensure(&admin_url(), &names, &password, PasswordMode::IfCreated)
        .await
        .unwrap();
    assert!(first.changed());
    let url = connection_url(&admin_url(), &names, &password).unwrap();
    let service = connect(&url).await.unwrap();
    service
        .batch_execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('phi')")
        .await
        .unwrap();
    drop(service);

    // What a reconcile does after the service was (re)created under Retain: ensure again.
    let again = admin::ensure(&admin_url(), &names, &password, PasswordMode::IfCreated)
        .await
        .unwrap();
    assert_eq!(again, Provisioned::default());
    assert!(!again.changed());
    let service = connect(&url).await.unwrap();
    let row = service.query_one("SELECT v FROM kept", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "phi");
}

#[tokio::test]
async fn reset_replaces_the_password() {
    let names = unique_names();
    let _cleanup = cleanup(&names);
    let old = generate_password();
    let new = generate_password();
    admin::ensure(&admin_url(), &names, &old, PasswordMode::IfCreated)
        .await
        .unwrap();
    assert!(password_matches(&names.role, &old).await);

    // IfCreated leaves an existing role's password alone...
    let kept = admin::ensure(&admin_url(), &names, &new, PasswordMode::IfCreated)
        .await
        .unwrap();
    assert!(!kept.password_set);
    assert!(password_matches(&names.role, &old).await);

    // ...Reset replaces it.
    let reset = admin::ensure(&admin_url(), &names, &new, PasswordMode::Reset)
        .await
        .unwrap();
    assert_eq!(
        reset,
        Provisioned {
            password_set: true,
            ..Provisioned::default()
        }
    );
    assert!(password_matches(&names.role, &new).await);
    assert!(!password_matches(&names.role, &old).await);

    let new_url = connection_url(&admin_url(), &names, &new).unwrap();
    connect(&new_url).await.expect("the new password works");
    // Where the server checks passwords, the old one must now fail. The local test server
    // trusts 127.0.0.1 (a wrong password gets in), so there the check above on the stored
    // SCRAM verifier is what proves it.
    let old_url = connection_url(&admin_url(), &names, &old).unwrap();
    let bogus_url = connection_url(&admin_url(), &names, "not-the-password").unwrap();
    if connect(&bogus_url).await.is_err() {
        let err = connect(&old_url)
            .await
            .expect_err("the old password must fail");
        assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");
    }
}

#[tokio::test]
async fn other_roles_cannot_connect_to_the_database() {
    let names = unique_names();
    let mut cleanup = cleanup(&names);
    let other = format!("{}_other", names.role);
    cleanup.roles.push(other.clone());
    admin::ensure(
        &admin_url(),
        &names,
        &generate_password(),
        PasswordMode::IfCreated,
    )
    .await
    .unwrap();
    let su = superuser().await;
    su.batch_execute(&format!(
        "CREATE ROLE {} LOGIN PASSWORD 'x'",
        quote_ident(&other)
    ))
    .await
    .unwrap();

    let other_names = DatabaseNames {
        database: names.database.clone(),
        role: other.clone(),
    };
    let url = connection_url(&admin_url(), &other_names, "x").unwrap();
    let err = connect(&url).await.expect_err("PUBLIC lost CONNECT");
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{err}");
}

#[tokio::test]
async fn drop_removes_database_and_role_and_a_second_drop_finds_nothing() {
    let names = unique_names();
    let _cleanup = cleanup(&names);
    let password = generate_password();
    admin::ensure(&admin_url(), &names, &password, PasswordMode::IfCreated)
        .await
        .unwrap();
    // An open session of the service must not block the drop.
    let url = connection_url(&admin_url(), &names, &password).unwrap();
    let service = connect(&url).await.unwrap();

    let dropped = admin::drop(&admin_url(), &names).await.unwrap();
    assert_eq!(
        dropped,
        admin::Dropped {
            dropped_database: true,
            dropped_role: true
        }
    );
    assert!(!admin::exists(&admin_url(), &names).await.unwrap());
    let role = superuser()
        .await
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&names.role])
        .await
        .unwrap();
    assert!(role.is_none());
    assert!(
        service.simple_query("SELECT 1").await.is_err(),
        "session ended"
    );

    let again = admin::drop(&admin_url(), &names).await.unwrap();
    assert_eq!(again, admin::Dropped::default());
}

#[tokio::test]
async fn a_database_owned_by_another_role_is_not_taken_over() {
    let names = unique_names();
    let mut cleanup = cleanup(&names);
    let squatter = format!("{}_squatter", names.role);
    cleanup.roles.push(squatter.clone());
    let su = superuser().await;
    su.batch_execute(&format!("CREATE ROLE {}", quote_ident(&squatter)))
        .await
        .unwrap();
    su.batch_execute(&format!(
        "CREATE DATABASE {} OWNER {}",
        quote_ident(&names.database),
        quote_ident(&squatter)
    ))
    .await
    .unwrap();
    let err = admin::ensure(
        &admin_url(),
        &names,
        &generate_password(),
        PasswordMode::Reset,
    )
    .await
    .unwrap_err();
    assert_eq!(err.reason(), "DatabaseError");
    assert!(err.to_string().contains(&squatter), "{err}");
}

#[tokio::test]
async fn an_admin_with_createrole_and_createdb_suffices_and_one_without_is_told_so() {
    let names = unique_names();
    let mut cleanup = cleanup(&names);
    let weak = format!("{}_weak", names.role);
    let able = format!("{}_able", names.role);
    cleanup.roles.extend([weak.clone(), able.clone()]);
    let su = superuser().await;
    su.batch_execute(&format!(
        "CREATE ROLE {} LOGIN PASSWORD 'weak-pw'; CREATE ROLE {} LOGIN PASSWORD 'weak-pw' CREATEROLE CREATEDB",
        quote_ident(&weak),
        quote_ident(&able)
    ))
    .await
    .unwrap();
    let as_role = |role: &str| {
        let names = DatabaseNames {
            database: "postgres".into(),
            role: role.into(),
        };
        connection_url(&admin_url(), &names, "weak-pw").unwrap()
    };

    let password = generate_password();
    let err = admin::ensure(&as_role(&weak), &names, &password, PasswordMode::IfCreated)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "AdminPermissionDenied", "{err}");
    assert!(!err.to_string().contains("weak-pw") && !err.to_string().contains(&password));

    let done = admin::ensure(&as_role(&able), &names, &password, PasswordMode::IfCreated)
        .await
        .unwrap();
    assert_eq!(done, CREATED);
    let url = connection_url(&admin_url(), &names, &password).unwrap();
    connect(&url)
        .await
        .unwrap()
        .batch_execute("CREATE TABLE t (x int)")
        .await
        .unwrap();
    let dropped = admin::drop(&as_role(&able), &names).await.unwrap();
    assert!(dropped.dropped_database && dropped.dropped_role);
}

#[tokio::test]
async fn an_unreachable_server_is_reported_without_the_password() {
    let names = unique_names();
    let admin = "postgres://postgres:hunter2-secret@127.0.0.1:1/postgres?connect_timeout=5";
    let err = admin::ensure(admin, &names, "service-secret", PasswordMode::Reset)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "AdminUnreachable", "{err}");
    let message = err.to_string();
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert!(
        !message.contains("hunter2") && !message.contains("service-secret"),
        "{message}"
    );
    assert!(!format!("{err:?}").contains("hunter2"));
}

#[tokio::test]
async fn tls_that_cannot_be_honoured_is_refused_not_downgraded() {
    let names = unique_names();
    for mode in ["require", "verify-full"] {
        let admin = format!("{}?sslmode={mode}", admin_url().split('?').next().unwrap());
        let err = admin::exists(&admin, &names).await.unwrap_err();
        assert!(matches!(err, DatabaseError::TlsUnsupported { .. }), "{err}");
        assert_eq!(err.reason(), "InvalidAdminUrl");
        let err = connection_url(&admin, &names, "pw").unwrap_err();
        assert!(matches!(err, DatabaseError::TlsUnsupported { .. }), "{err}");
    }
}

/// Whether `password` is the role's password, by PostgreSQL's stored SCRAM-SHA-256 verifier
/// (RFC 5802: StoredKey = H(HMAC(PBKDF2(password, salt, i), "Client Key"))). The local test
/// server trusts every connection from 127.0.0.1, so logging in proves nothing there.
async fn password_matches(role: &str, password: &str) -> bool {
    let row = superuser()
        .await
        .query_one(
            "SELECT split_part(split_part(rolpassword, '$', 2), ':', 1)::int,
                    decode(split_part(split_part(rolpassword, '$', 2), ':', 2), 'base64'),
                    decode(split_part(split_part(rolpassword, '$', 3), ':', 1), 'base64')
             FROM pg_authid WHERE rolname = $1 AND rolpassword LIKE 'SCRAM-SHA-256$%'",
            &[&role],
        )
        .await
        .expect("a SCRAM-SHA-256 password (password_encryption = scram-sha-256)");
    let (iterations, salt, stored): (i32, Vec<u8>, Vec<u8>) = (row.get(0), row.get(1), row.get(2));
    let mut block = salt.clone();
    block.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac(password.as_bytes(), &block);
    let mut salted = u;
    for _ in 1..iterations {
        u = hmac(password.as_bytes(), &u);
        salted.iter_mut().zip(u).for_each(|(s, b)| *s ^= b);
    }
    let client_key = hmac(&salted, b"Client Key");
    Sha256::digest(client_key)[..] == stored[..]
}

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner = Sha256::new()
        .chain_update(block.map(|b| b ^ 0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(block.map(|b| b ^ 0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}
