//! The `alertmanager` step: the Alertmanager configuration of rancher-monitoring, made from the
//! one k8s-infra carries (`monitoring/alerting/alertmanager.yaml`: its routes, which silence
//! Watchdog and the noisy alerts, and its `null` receiver) with its Slack receiver replaced by
//! the site's receivers: an SMTP relay inside the site and/or a webhook, and Slack only when the
//! site gives its URL. Written to a Secret that the monitoring release names
//! (`alertmanager.alertmanagerSpec.useExistingSecret` and `configSecret`), so helm's pre-install
//! hook that writes the chart's own configuration never replaces it.
//!
//! The site file's `alerting` section:
//! `{email: {smarthost, from, to, auth_username, auth_password, require_tls}, webhook_url,
//! slack: {api_url, channel}}`; an empty `smarthost`, `webhook_url` or `api_url` leaves that
//! receiver out.

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use serde_yaml_ng::{Mapping, Value};

use crate::plan::Carried;
use crate::site::Site;

/// The receiver every route that is not silenced sends to.
const SITE_RECEIVER: &str = "site";

/// A plan's `alertmanager:` step: the Secret holding rancher-monitoring's Alertmanager configuration, with the site's
/// receivers.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Alertmanager {
    /// The monitoring release's namespace, where the Secret is written.
    pub namespace: String,
    /// The Secret's name; its key is `alertmanager.yaml`, as the operator reads it.
    pub secret: String,
    /// The carried upstream configuration, `files.airgap.local/alertmanager.yaml:<version>`.
    pub base: String,
}

#[derive(Debug, Default, Deserialize)]
struct SiteView {
    #[serde(default)]
    alerting: Alerting,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Alerting {
    #[serde(default)]
    email: Email,
    #[serde(default)]
    webhook_url: String,
    #[serde(default)]
    slack: Slack,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Email {
    /// `host:port` of the site's SMTP relay.
    #[serde(default)]
    smarthost: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    auth_username: String,
    #[serde(default)]
    auth_password: String,
    /// Alertmanager's default is true; a relay inside the site often speaks plain SMTP.
    #[serde(default = "yes")]
    require_tls: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Slack {
    #[serde(default)]
    api_url: String,
    #[serde(default)]
    channel: String,
}

impl Alertmanager {
    /// Fails when `base` is not a file the bundle spec carries (checked on plan load).
    pub fn check(&self, carried: &Carried) -> Result<()> {
        if !carried.files.contains(&self.base) {
            bail!("alertmanager: base {} is not in the bundle spec", self.base);
        }
        Ok(())
    }

    /// The Secret holding the configuration, from the carried `base` text and the site.
    pub fn secret(&self, base: &str, site: &Site) -> Result<Value> {
        let config = configuration(base, site).with_context(|| format!("alertmanager: {}", self.base))?;
        Ok(serde_yaml_ng::to_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": self.secret, "namespace": self.namespace},
            "stringData": {"alertmanager.yaml": serde_yaml_ng::to_string(&config)?},
        }))?)
    }
}

/// The upstream configuration with the site's receivers in place of its Slack one.
pub fn configuration(base: &str, site: &Site) -> Result<Value> {
    let alerting = site.view::<SiteView>()?.alerting;
    let mut config: Value = serde_yaml_ng::from_str(base).context("not YAML")?;
    let map = config.as_mapping_mut().ok_or_else(|| anyhow!("not a mapping"))?;
    if let Some(Value::Mapping(global)) = map.get_mut("global") {
        global.remove("slack_api_url");
    }
    let route = map.get_mut("route").and_then(Value::as_mapping_mut).ok_or_else(|| anyhow!("no route"))?;
    route.insert("receiver".into(), SITE_RECEIVER.into());
    let kept: Vec<Value> = match map.get("receivers") {
        Some(Value::Sequence(list)) => list
            .iter()
            .filter(|r| r.get("slack_configs").is_none() && r.get("name") != Some(&SITE_RECEIVER.into()))
            .cloned()
            .collect(),
        _ => bail!("no receivers"),
    };
    let mut receivers = kept;
    receivers.push(site_receiver(&alerting, site)?);
    map.insert("receivers".into(), Value::Sequence(receivers));
    Ok(config)
}

fn site_receiver(a: &Alerting, site: &Site) -> Result<Value> {
    let mut receiver = Mapping::new();
    receiver.insert("name".into(), SITE_RECEIVER.into());
    let e = &a.email;
    if !e.smarthost.is_empty() {
        if e.from.is_empty() || e.to.is_empty() {
            bail!("{}: alerting.email needs from and to with its smarthost", site.path().display());
        }
        let mut email = serde_json::Map::new();
        email.insert("to".into(), e.to.clone().into());
        email.insert("from".into(), e.from.clone().into());
        email.insert("smarthost".into(), e.smarthost.clone().into());
        email.insert("require_tls".into(), e.require_tls.into());
        email.insert("send_resolved".into(), true.into());
        if !e.auth_username.is_empty() {
            email.insert("auth_username".into(), e.auth_username.clone().into());
            email.insert("auth_password".into(), e.auth_password.clone().into());
        }
        receiver.insert("email_configs".into(), serde_yaml_ng::to_value(vec![email])?);
    }
    if !a.webhook_url.is_empty() {
        let hook = json!([{"url": a.webhook_url, "send_resolved": true}]);
        receiver.insert("webhook_configs".into(), serde_yaml_ng::to_value(hook)?);
    }
    if !a.slack.api_url.is_empty() {
        let slack = json!([{"api_url": a.slack.api_url, "channel": a.slack.channel, "send_resolved": true}]);
        receiver.insert("slack_configs".into(), serde_yaml_ng::to_value(slack)?);
    }
    Ok(Value::Mapping(receiver))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const BASE: &str = "global:\n  resolve_timeout: 5m\n  slack_api_url: <YOUR-SLACK-API-URL>\nroute:\n  receiver: slack\n  routes:\n  - match: {alertname: Watchdog}\n    receiver: 'null'\nreceivers:\n- name: 'null'\n- name: slack\n  slack_configs:\n  - channel: '<YOUR-CHANNEL-HERE>'\n";

    fn site(alerting: &str) -> Site {
        Site::parse(Path::new("site.yaml"), &format!("alerting: {alerting}\n")).unwrap()
    }

    #[test]
    fn the_site_receivers_replace_slack_and_the_routes_stay() {
        let config = configuration(BASE, &site("{email: {smarthost: 'smtp.site:25', from: a@site, to: ops@site, require_tls: false}, webhook_url: 'http://hook.site/alert'}")).unwrap();
        assert_eq!(config["route"]["receiver"], "site");
        assert_eq!(config["route"]["routes"][0]["receiver"], "null");
        assert!(config["global"].get("slack_api_url").is_none());
        let receivers = config["receivers"].as_sequence().unwrap();
        assert_eq!(receivers.len(), 2, "{receivers:?}");
        let site_receiver = &receivers[1];
        assert_eq!(site_receiver["email_configs"][0]["smarthost"], "smtp.site:25");
        assert_eq!(site_receiver["email_configs"][0]["require_tls"], false);
        assert_eq!(site_receiver["webhook_configs"][0]["url"], "http://hook.site/alert");
        assert!(site_receiver.get("slack_configs").is_none(), "no Slack unless the site gives one");
        let slack =
            configuration(BASE, &site("{slack: {api_url: 'https://hooks.slack.com/x', channel: '#ops'}}")).unwrap();
        assert_eq!(slack["receivers"][1]["slack_configs"][0]["channel"], "#ops");
        let half = configuration(BASE, &site("{email: {smarthost: 'smtp.site:25'}}")).unwrap_err();
        assert!(format!("{half:#}").contains("from and to"), "{half:#}");
    }
}
