//! A private PostgreSQL cluster for `hds up`, created with `initdb` and run with `pg_ctl` under
//! the data directory, listening on 127.0.0.1 only, and stopped on exit.
//!
//! PostgreSQL refuses to run as root, so under root the cluster belongs to the `postgres` user
//! (or `nobody`) and the tools run as that user.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

pub struct EmbeddedPostgres {
    bin: PathBuf,
    data: PathBuf,
    run_as: Option<(u32, u32)>,
    pub port: u16,
}

impl EmbeddedPostgres {
    /// Initialises the cluster if needed and starts it.
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        let bin = find_bin_dir()?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        let data = dir.join("postgres");
        let run_as = if is_root() {
            Some(unprivileged_user()?)
        } else {
            None
        };
        if !data.join("PG_VERSION").exists() {
            std::fs::create_dir_all(&data)?;
            chown(&data, run_as)?;
            let pwfile_free = [
                "-D",
                path_str(&data)?,
                "-U",
                "hds",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ];
            let out = run(&bin.join("initdb"), &pwfile_free, run_as)?;
            if !out.status.success() {
                bail!(
                    "initdb failed in {}: {}{}",
                    data.display(),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let port = free_port()?;
        let log = dir.join("postgres.log");
        if !log.exists() {
            std::fs::write(&log, b"")?;
        }
        chown(&log, run_as)?;
        let opts = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{}' -c max_connections=200 -c shared_buffers=256MB",
            path_str(&data)?
        );
        let out = run(
            &bin.join("pg_ctl"),
            &[
                "-D",
                path_str(&data)?,
                "-o",
                &opts,
                "-l",
                path_str(&log)?,
                "-w",
                "-t",
                "60",
                "start",
            ],
            run_as,
        )?;
        if !out.status.success() {
            bail!(
                "PostgreSQL did not start (see {}): {}",
                log.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        tracing::info!(port, data = %data.display(), "embedded PostgreSQL started");
        Ok(Self {
            bin,
            data,
            run_as,
            port,
        })
    }

    /// An admin URL (database `postgres`); services get their own databases beside it.
    pub fn admin_url(&self) -> String {
        format!("postgres://hds@127.0.0.1:{}/postgres", self.port)
    }

    pub fn stop(&self) {
        let Ok(data) = path_str(&self.data) else {
            return;
        };
        match run(
            &self.bin.join("pg_ctl"),
            &["-D", data, "-m", "fast", "-w", "stop"],
            self.run_as,
        ) {
            Ok(o) if o.status.success() => tracing::info!("embedded PostgreSQL stopped"),
            Ok(o) => {
                tracing::warn!(stderr = %String::from_utf8_lossy(&o.stderr), "pg_ctl stop failed")
            }
            Err(e) => tracing::warn!(error = %e, "pg_ctl stop failed"),
        }
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str()
        .context("the data directory path must be valid UTF-8")
}

/// `initdb` on PATH, or the newest `/usr/lib/postgresql/<version>/bin`.
fn find_bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let initdb = dir.join("initdb");
            if initdb.is_file() && dir.join("pg_ctl").is_file() {
                // Debian links the tools into /usr/local/bin; resolve to the real bin dir.
                let real = initdb.canonicalize().unwrap_or(initdb);
                return Ok(real.parent().map(Path::to_path_buf).unwrap_or(dir));
            }
        }
    }
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, p)| p).context(
        "no PostgreSQL server found (initdb and pg_ctl on PATH or in /usr/lib/postgresql/*/bin). \
         Install it (Debian/Ubuntu: apt-get install postgresql) or pass --postgres-url to use an existing server",
    )
}

fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(l.local_addr()?.port())
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// The uid and gid of `postgres`, else `nobody`, from /etc/passwd.
fn unprivileged_user() -> anyhow::Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").context("cannot read /etc/passwd")?;
    for wanted in ["postgres", "nobody"] {
        for line in passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() > 3
                && f[0] == wanted
                && let (Ok(uid), Ok(gid)) = (f[2].parse(), f[3].parse())
            {
                return Ok((uid, gid));
            }
        }
    }
    bail!("running as root, and there is no 'postgres' or 'nobody' user to run PostgreSQL as")
}

fn chown(path: &Path, run_as: Option<(u32, u32)>) -> anyhow::Result<()> {
    if let Some((uid, gid)) = run_as {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .with_context(|| format!("cannot hand {} to the PostgreSQL user", path.display()))?;
    }
    Ok(())
}

fn run(
    program: &Path,
    args: &[&str],
    run_as: Option<(u32, u32)>,
) -> anyhow::Result<std::process::Output> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(program);
    cmd.args(args).env("LC_ALL", "C.UTF-8");
    if let Some((uid, gid)) = run_as {
        cmd.uid(uid).gid(gid).current_dir("/");
    }
    cmd.output()
        .with_context(|| format!("cannot run {}", program.display()))
}
