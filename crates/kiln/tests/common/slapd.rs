//! A real OpenLDAP server for LDAP sign-in tests: Debian's `/usr/sbin/slapd`
//! on a free 127.0.0.1 port, with its own temporary directory, loaded with
//! the users and groups a test names. One copy, shared by `kiln`'s end-to-end
//! tests (`common/mod.rs`) and `kiln-server`'s (`#[path]`), so it uses only
//! std and `tempfile`: the entries are loaded offline with slapd's own
//! `slapadd` mode before it starts, so nothing but the `slapd` package is
//! needed.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SLAPD: &str = "/usr/sbin/slapd";
pub const SUFFIX: &str = "dc=kiln,dc=test";
pub const ROOT_DN: &str = "cn=admin,dc=kiln,dc=test";
pub const ROOT_PW: &str = "kiln-test-root";

/// A running slapd, killed (and its directory removed) on drop.
pub struct Slapd {
    child: Child,
    port: u16,
    /// The ldaps:// port, when started with a certificate.
    tls_port: Option<u16>,
    dir: tempfile::TempDir,
}

impl Slapd {
    /// Starts slapd with `users` (uid, password) under `ou=people` and
    /// `groups` (cn, member uids) as groupOfNames under `ou=groups`. `None`
    /// if slapd is not installed (the caller skips, or fails under CI);
    /// panics, with slapd's own words, if it is installed but will not run.
    pub fn start(users: &[(&str, &str)], groups: &[(&str, &[&str])]) -> Option<Slapd> {
        Slapd::start_with(users, groups, None)
    }

    /// As [`Slapd::start`], and with `tls` (the PEM files of a certificate
    /// chain and its key) it also offers StartTLS on `url()` and listens on
    /// `ldaps_url()`.
    pub fn start_with(
        users: &[(&str, &str)],
        groups: &[(&str, &[&str])],
        tls: Option<(&Path, &Path)>,
    ) -> Option<Slapd> {
        if !Path::new(SLAPD).exists() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("db")).unwrap();
        std::fs::write(d.join("slapd.conf"), config(d, tls)).unwrap();
        std::fs::write(d.join("data.ldif"), ldif(users, groups)).unwrap();
        // `slapd -Ta` is slapadd: it writes the database directly, with no
        // server to wait for and no client library to load through.
        let out = Command::new(SLAPD)
            .arg("-Ta")
            .arg("-f")
            .arg(d.join("slapd.conf"))
            .arg("-l")
            .arg(d.join("data.ldif"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "slapadd failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Between asking the OS for a free port and slapd binding it, another
        // process may take it: then slapd exits, and a new port is tried.
        for _ in 0..5 {
            let port = free_port();
            let tls_port = tls.map(|_| free_port());
            let mut urls = format!("ldap://127.0.0.1:{port}/");
            if let Some(p) = tls_port {
                write!(urls, " ldaps://127.0.0.1:{p}/").unwrap();
            }
            let log = std::fs::File::create(d.join("slapd.log")).unwrap();
            let mut child = Command::new(SLAPD)
                .arg("-f")
                .arg(d.join("slapd.conf"))
                .arg("-h")
                .arg(&urls)
                // Any -d keeps slapd in the foreground, our child, for Drop
                // to kill; 0 logs nothing but errors.
                .args(["-d", "0"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                let up = |p: u16| TcpStream::connect(("127.0.0.1", p)).is_ok();
                if up(port) && tls_port.is_none_or(up) {
                    return Some(Slapd {
                        child,
                        port,
                        tls_port,
                        dir,
                    });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "slapd did not start: {}",
            std::fs::read_to_string(d.join("slapd.log")).unwrap_or_default()
        );
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// The ldaps:// URL, named `localhost` (what a test certificate names).
    pub fn ldaps_url(&self) -> Option<String> {
        Some(format!("ldaps://localhost:{}", self.tls_port?))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The bind DN of a user, with `{user}` for the user name.
    pub fn user_dn_template(&self) -> String {
        format!("uid={{user}},ou=people,{SUFFIX}")
    }

    pub fn user_base(&self) -> String {
        format!("ou=people,{SUFFIX}")
    }

    pub fn group_base(&self) -> String {
        format!("ou=groups,{SUFFIX}")
    }

    pub fn group_dn(&self, cn: &str) -> String {
        format!("cn={cn},ou=groups,{SUFFIX}")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// slapd.conf: the mdb backend in `d/db`, the pid and args files in `d`, so
/// nothing touches /var/run/slapd or the system's own directory.
fn config(d: &Path, tls: Option<(&Path, &Path)>) -> String {
    let d = d.display();
    let mut c = String::new();
    for schema in ["core", "cosine", "nis", "inetorgperson"] {
        writeln!(c, "include /etc/ldap/schema/{schema}.schema").unwrap();
    }
    writeln!(c, "pidfile {d}/slapd.pid\nargsfile {d}/slapd.args").unwrap();
    // Debian builds its backends as modules.
    c.push_str("modulepath /usr/lib/ldap\nmoduleload back_mdb\n");
    if let Some((cert, key)) = tls {
        writeln!(
            c,
            "TLSCertificateFile {}\nTLSCertificateKeyFile {}",
            cert.display(),
            key.display()
        )
        .unwrap();
    }
    writeln!(c, "database mdb\nmaxsize 16777216\ndirectory {d}/db").unwrap();
    writeln!(
        c,
        "suffix \"{SUFFIX}\"\nrootdn \"{ROOT_DN}\"\nrootpw {ROOT_PW}"
    )
    .unwrap();
    c
}

fn ldif(users: &[(&str, &str)], groups: &[(&str, &[&str])]) -> String {
    fn plain(v: &str) -> &str {
        assert!(
            !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic()) && !v.starts_with([':', '<']),
            "test LDIF values must be plain ASCII words: {v:?}"
        );
        v
    }
    let mut l = format!(
        "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: kiln\ndc: kiln\n\n\
         dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n"
    );
    for (uid, password) in users {
        let uid = plain(uid);
        // A cleartext userPassword: slapd compares it as is on a simple bind.
        writeln!(
            l,
            "dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\nuserPassword: {}\n",
            plain(password)
        )
        .unwrap();
    }
    for (cn, uids) in groups {
        let cn = plain(cn);
        writeln!(
            l,
            "dn: cn={cn},ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: {cn}"
        )
        .unwrap();
        // groupOfNames must have a member: an empty group holds the root DN.
        if uids.is_empty() {
            writeln!(l, "member: {ROOT_DN}").unwrap();
        }
        for uid in *uids {
            writeln!(l, "member: uid={},ou=people,{SUFFIX}", plain(uid)).unwrap();
        }
        l.push('\n');
    }
    l
}
