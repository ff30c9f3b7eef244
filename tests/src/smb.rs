//! Driving the SMB bridge with Samba's own clients: `smbclient` for file
//! operations and `smbtorture` for protocol suites, each under a deadline,
//! plus the `cairn smb user add` step every SMB test needs first.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::command;
use crate::gateway::{cairn_bin, Gateway};

/// How long one smbclient or smbtorture run may take.
pub const SMB_DEADLINE: Duration = Duration::from_secs(300);

/// The SMB user the tests log in as (a Unix account is created for it).
pub const USER: &str = "cairnsmb";
pub const PASSWORD: &str = "Secret-1";

/// The FUSE view smbd serves, under the gateway's data folder.
pub fn view_dir(gw: &Gateway) -> PathBuf {
    gw.gateway_data_dir().join("smb").join("view")
}

/// Runs `cairn smb user add NAME` for `gw` (`--data` for a `cairn up`
/// gateway, as the README shows, else `--config`) with `stdin` as its input.
pub fn cairn_user_add(gw: &Gateway, name: &str, stdin: &str) -> Output {
    let mut cmd = Command::new(cairn_bin());
    cmd.args(["smb", "user", "add", name]);
    if gw.is_up() {
        cmd.arg("--data").arg(gw.up_dir());
    } else {
        cmd.arg("--config").arg(gw.config_path());
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cairn smb user add");
    // A refused name exits before reading: a broken pipe is fine then.
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    child
        .wait_with_output()
        .expect("wait for cairn smb user add")
}

/// Adds [`USER`], as a user would: the share's root is the SMB users'
/// group's, so nothing else is needed for them to write there.
pub fn prepare(gw: &Gateway) -> SmbClient {
    let out = cairn_user_add(gw, USER, &format!("{PASSWORD}\n"));
    assert!(
        out.status.success(),
        "cairn smb user add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    SmbClient::new(gw, "cairn")
}

/// smbclient against one share of a gateway's bridge.
#[derive(Debug, Clone)]
pub struct SmbClient {
    pub port: u16,
    pub share: String,
    pub user: String,
    pub password: String,
}

impl SmbClient {
    pub fn new(gw: &Gateway, share: &str) -> Self {
        Self {
            port: gw.smb_port(),
            share: share.to_owned(),
            user: USER.to_owned(),
            password: PASSWORD.to_owned(),
        }
    }

    /// The same share as another SMB user.
    pub fn as_user(&self, user: &str, password: &str) -> Self {
        Self {
            user: user.to_owned(),
            password: password.to_owned(),
            ..self.clone()
        }
    }

    /// Runs `smbclient -c CMDS` (SMB3) and returns its output.
    pub fn run(&self, cmds: &str) -> Output {
        let mut cmd = Command::new("smbclient");
        cmd.arg(format!("//127.0.0.1/{}", self.share))
            .args(["-p", &self.port.to_string()])
            .args(["-U", &format!("{}%{}", self.user, self.password)])
            .args(["-m", "SMB3", "-c", cmds]);
        match command::run(cmd, SMB_DEADLINE) {
            Ok(out) => out,
            Err(e) => panic!("smbclient -c {cmds:?}: {e}"),
        }
    }

    /// Like [`run`](Self::run), but panics unless it succeeded without any
    /// NT_STATUS error; returns stdout and stderr together.
    #[track_caller]
    pub fn ok(&self, cmds: &str) -> String {
        let out = self.run(cmds);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && !text.contains("NT_STATUS_"),
            "smbclient -c {cmds:?} failed ({}):\n{text}",
            out.status
        );
        text
    }
}

/// Runs smbtorture `tests` against `//127.0.0.1/SHARE`; returns whether it
/// passed and its output.
pub fn smbtorture(client: &SmbClient, tests: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("smbtorture");
    cmd.arg(format!("//127.0.0.1/{}", client.share))
        .args(["-p", &client.port.to_string()])
        .args(["-U", &format!("{}%{}", client.user, client.password)])
        .args(tests);
    let out = match command::run(cmd, SMB_DEADLINE) {
        Ok(out) => out,
        Err(e) => panic!("smbtorture {tests:?}: {e}"),
    };
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
