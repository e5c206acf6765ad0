//! The Alertmanager configuration the `alertmanager` step writes (installer::alertmanager_config),
//! made from k8s-infra's `monitoring/alerting/alertmanager.yaml` as the MOSIP bundle carries it
//! (the verbatim copy in `shared/reference/k8s-infra-v1.2.0.1-B1`) and a site's receivers: the
//! real `amtool` of Alertmanager v0.22.2 (what rancher-monitoring runs, built by
//! tests/tools/install.sh) accepts it and refuses the upstream file as it is; the real
//! `alertmanager` of the same version, run with it, delivers a test alert to a real SMTP server
//! (Debian's aiosmtpd, writing a Maildir) and to a webhook (a listener written here).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use installer::site::Site;
use testkit::{free_port, tool};

fn upstream_config() -> String {
    let shared = std::env::var_os("AIRGAP_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| testkit::workspace_root().join("../shared"));
    let file = shared.join("reference/k8s-infra-v1.2.0.1-B1/monitoring/alerting/alertmanager.yaml");
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn amtool_check(dir: &Path, name: &str, config: &str) -> Output {
    let file = dir.join(name);
    std::fs::write(&file, config).unwrap();
    Command::new(tool("amtool")).arg("check-config").arg(&file).output().unwrap()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start on port {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A webhook receiver: sends the body of each POST it gets.
fn webhook(listener: TcpListener, bodies: mpsc::Sender<String>) {
    for stream in listener.incoming().flatten() {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let _ = (&stream).write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let _ = bodies.send(String::from_utf8_lossy(&body).into_owned());
    }
}

#[test]
fn the_site_receivers_configuration_passes_amtool_and_alertmanager_delivers_to_smtp_and_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = upstream_config();
    let refused = amtool_check(dir.path(), "upstream.yaml", &upstream);
    assert!(!refused.status.success(), "amtool refuses the upstream file's placeholders");

    let (smtp_port, hook) = (free_port(), TcpListener::bind("127.0.0.1:0").unwrap());
    let hook_port = hook.local_addr().unwrap().port();
    let site = Site::parse(
        &dir.path().join("site.yaml"),
        &format!(
            "alerting:\n  email: {{smarthost: '127.0.0.1:{smtp_port}', from: alertmanager@site.local, to: ops@site.local, require_tls: false}}\n  \
             webhook_url: 'http://127.0.0.1:{hook_port}/alerts'\n"
        ),
    )
    .unwrap();
    let config = installer::alertmanager_config::configuration(&upstream, &site).unwrap();
    let text = serde_yaml_ng::to_string(&config).unwrap();
    let checked = amtool_check(dir.path(), "site.yaml.config", &text);
    assert!(
        checked.status.success(),
        "amtool: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // The route waits five minutes before it sends a group (upstream's group_wait): shortened here
    // so the test does not wait that long; receivers and routes are as the step writes them.
    let mut quick = config.clone();
    quick["route"]["group_wait"] = "1s".into();
    let config_file = dir.path().join("alertmanager.yaml");
    std::fs::write(&config_file, serde_yaml_ng::to_string(&quick).unwrap()).unwrap();

    let maildir = dir.path().join("maildir");
    let _smtp = Killed(
        Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{smtp_port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stderr(Stdio::null())
            .spawn()
            .expect("Debian's python3-aiosmtpd (tests/tools/install.sh)"),
    );
    let (bodies, received) = mpsc::channel();
    std::thread::spawn(move || webhook(hook, bodies));
    let am_port = free_port();
    let _alertmanager = Killed(
        Command::new(tool("alertmanager"))
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!("--storage.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address=")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(smtp_port, "aiosmtpd");
    wait_for_port(am_port, "alertmanager");

    let sent = Command::new(tool("amtool"))
        .args(["alert", "add", "NodeMemoryUsageHigh", "severity=warning", "namespace=default", "job=node-exporter"])
        .args(["--annotation=summary=memory above 60%", &format!("--alertmanager.url=http://127.0.0.1:{am_port}")])
        .output()
        .unwrap();
    assert!(sent.status.success(), "amtool alert add: {}", String::from_utf8_lossy(&sent.stderr));

    let posted = received.recv_timeout(Duration::from_secs(120)).expect("the webhook got the alert");
    let posted: serde_json::Value = serde_json::from_str(&posted).unwrap();
    assert_eq!(posted["receiver"], "site");
    assert_eq!(posted["alerts"][0]["labels"]["alertname"], "NodeMemoryUsageHigh");

    let deadline = Instant::now() + Duration::from_secs(120);
    let mail = loop {
        let new = maildir.join("new");
        if let Some(entry) = std::fs::read_dir(&new).ok().and_then(|mut d| d.next()) {
            break std::fs::read_to_string(entry.unwrap().path()).unwrap();
        }
        assert!(Instant::now() < deadline, "no mail reached the SMTP server");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(mail.contains("To: ops@site.local") && mail.contains("From: alertmanager@site.local"), "{mail}");
    assert!(mail.contains("NodeMemoryUsageHigh"), "{mail}");
}
