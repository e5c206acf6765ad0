//! The MOSIP plan's masterdata-loader redirect, with the oldest git a MOSIP image may carry:
//! Debian bullseye's git 2.30.2 (`python:3` of 2022 is bullseye), extracted from its Debian
//! package by tests/tools/install.sh (`git-2.30.2`). Inside a network namespace with no way out,
//! that git runs the image's own command, `git clone https://github.com/mosip/mosip-data -b
//! 1.2.0.1`, with `/etc/gitconfig` as the plan mounts it (the ConfigMap `mounted_files` makes,
//! for a site whose registry is the one this test serves) and the site CA as `site_ca` gives it.
//! /etc/gitconfig is put in place in a mount namespace of its own (an overlay on /etc), so the
//! machine's is never touched. The clone comes from `airgap registry serve`'s git view of a
//! bundle carrying the repository, and nothing is counted leaving. The same git given the
//! redirect as GIT_CONFIG_COUNT variables, as the plan did before, ignores them and goes for
//! github.com.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use installer::mounted_files::Mounts;
use installer::plan::Plan;
use installer::site::Site;
use testkit::{tool, workspace_root, FileServer, NewBundle, SiteRegistry};

const BRANCH: &str = "1.2.0.1";

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .env("GIT_AUTHOR_NAME", "airgap tests")
        .env("GIT_AUTHOR_EMAIL", "tests@airgap.invalid")
        .env("GIT_COMMITTER_NAME", "airgap tests")
        .env("GIT_COMMITTER_EMAIL", "tests@airgap.invalid")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A stand-in for github.com/mosip/mosip-data (made here: one file on branch 1.2.0.1), bare and
/// ready for git's dumb HTTP protocol under `www/github.com/mosip/mosip-data.git`.
fn upstream_repo(work: &Path, www: &Path) -> String {
    let tree = work.join("mosip-data");
    std::fs::create_dir_all(tree.join("mosip_master/xlsx")).unwrap();
    let marker = "stand-in masterdata, made by installer/tests/gitconfig_redirect.rs\n";
    std::fs::write(tree.join("mosip_master/xlsx/README"), marker).unwrap();
    git(&tree, &["init", "--quiet", "-b", BRANCH]);
    git(&tree, &["add", "--all"]);
    git(&tree, &["commit", "--quiet", "-m", "stand-in"]);
    let bare = www.join("github.com/mosip/mosip-data.git");
    std::fs::create_dir_all(bare.parent().unwrap()).unwrap();
    git(work, &["clone", "--quiet", "--bare", tree.to_str().unwrap(), bare.to_str().unwrap()]);
    git(&bare, &["update-server-info"]);
    marker.to_string()
}

/// The site registry over TLS (a CA it generates in `tls`), serving a bundle that carries the
/// repository, made by the bundler from a spec whose mirror for github.com is `web`.
fn serve(work: &Path, web: &FileServer, tls: &Path) -> SiteRegistry {
    let spec = format!(
        "git:\n  - url: https://github.com/mosip/mosip-data.git\n    ref: \"{BRANCH}\"\nmirrors:\n  github.com: {}/github.com\n",
        web.url()
    );
    let spec_path = work.join("bundle.yaml");
    std::fs::write(&spec_path, spec).unwrap();
    let bundle = NewBundle::new(&spec_path, &work.join("bundle"), &work.join("cache")).max_part_size(1 << 30);
    SiteRegistry::create(bundle).tls(tls).start().unwrap()
}

/// /etc/gitconfig as the masterdata-loader pod gets it: the plan's `files` entry, substituted for
/// a site whose registry is `address`, through the ConfigMap the installer makes of it.
fn mounted_gitconfig(address: &str) -> String {
    let plan = Plan::load(&workspace_root().join("manifests/mosip-1.2.0.1-B2/plan.yaml")).unwrap();
    let step = plan.clusters["mosip"].steps.iter().find(|s| s.id == "masterdata-loader").unwrap();
    let helm = step.helm().unwrap();
    let site = Site::parse(Path::new("site.yaml"), &format!("registry: {{address: '{address}'}}\n")).unwrap();
    let files: BTreeMap<String, String> = helm
        .files
        .iter()
        .map(|(path, text)| (path.clone(), site.substitute(text, &BTreeMap::new()).unwrap()))
        .collect();
    let mounts = Mounts::of(&helm.release, &files).unwrap();
    let key = &mounts.files["/etc/gitconfig"];
    let configmap = mounts.configmap(&helm.namespace, &files).unwrap();
    configmap["data"][key.as_str()].as_str().unwrap().to_string()
}

/// `git clone` as the image's entrypoint runs it, by the old git, in a mount namespace whose
/// /etc/gitconfig is `gitconfig` (none when None), with `env` added.
fn old_git_clone(work: &Path, gitconfig: Option<&str>, env: &[(&str, &str)], dest: &Path) -> Output {
    let layer = work.join("etc-overlay");
    std::fs::create_dir_all(&layer).unwrap();
    let source = work.join("gitconfig");
    std::fs::write(&source, gitconfig.unwrap_or_default()).unwrap();
    let place = if gitconfig.is_some() { r#"cp "$SOURCE" /etc/gitconfig"# } else { "rm -f /etc/gitconfig" };
    let script = format!(
        r#"set -e
mount -t tmpfs airgap-test "$LAYER"
mkdir "$LAYER/upper" "$LAYER/work"
mount -t overlay airgap-test -o "lowerdir=/etc,upperdir=$LAYER/upper,workdir=$LAYER/work" /etc
{place}
exec "$GIT" clone https://github.com/mosip/mosip-data -b {BRANCH} "$DEST""#
    );
    Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("LAYER", &layer)
        .env("SOURCE", &source)
        .env("DEST", dest)
        .env("GIT", tool("git-2.30.2"))
        .env("HOME", work)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("GIT_CONFIG_NOSYSTEM")
        .env_remove("GIT_SSL_CAINFO")
        .envs(env.iter().copied())
        .output()
        .expect("unshare (util-linux)")
}

#[test]
fn the_mounted_system_gitconfig_sends_git_2_30_to_the_site_registry() {
    let Some(leaks) = testkit::netns::isolated("the_mounted_system_gitconfig_sends_git_2_30_to_the_site_registry")
    else {
        return;
    };
    let version = Command::new(tool("git-2.30.2")).arg("--version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), "git version 2.30.2");

    let dir = tempfile::tempdir().unwrap();
    let (work, www, tls) = (dir.path().join("work"), dir.path().join("www"), dir.path().join("tls"));
    for d in [&work, &www, &tls] {
        std::fs::create_dir_all(d).unwrap();
    }
    let marker = upstream_repo(&work, &www);
    let web = FileServer::start(&www).unwrap();
    let registry = serve(&work, &web, &tls);
    drop(web);
    let (addr, ca) = (registry.address(), registry.ca().unwrap());

    let gitconfig = mounted_gitconfig(addr);
    assert!(gitconfig.contains(&format!("https://{addr}/git/github.com/mosip/mosip-data.git")), "{gitconfig}");
    let dest = work.join("redirected");
    let out = old_git_clone(&work, Some(&gitconfig), &[("GIT_SSL_CAINFO", ca.to_str().unwrap())], &dest);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "git 2.30.2 with the mounted gitconfig: {err}");
    let cloned = std::fs::read_to_string(dest.join("mosip_master/xlsx/README")).unwrap();
    assert_eq!(cloned, marker, "the clone holds what the bundle carries");
    leaks.assert_none();

    // The variables the plan used to set: git 2.30 does not read them.
    let key = format!("url.https://{addr}/git/github.com/mosip/mosip-data.git.insteadOf");
    let variables = [
        ("GIT_SSL_CAINFO", ca.to_str().unwrap()),
        ("GIT_CONFIG_COUNT", "1"),
        ("GIT_CONFIG_KEY_0", key.as_str()),
        ("GIT_CONFIG_VALUE_0", "https://github.com/mosip/mosip-data"),
    ];
    let out = old_git_clone(&work, None, &variables, &work.join("not-redirected"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("github.com"), "git 2.30.2 went to github.com: {err}");
    let seen = leaks.read().unwrap();
    if leaks.nameservers().iter().any(|ns| !ns.starts_with("127.")) {
        assert!(!seen.is_empty(), "the lookup of github.com was counted leaving the namespace");
    }
}
