//! `airgap install verify`: proves, from inside the site, that a finished install works now,
//! and keeps a report people can read. Read-only but for short-lived probe pods (node mirrors)
//! and `--testrig`'s Jobs, each deleted once read.
//!
//! Every check is derived from the plan as `install apply` renders it (the same renderer, so the
//! same objects) and from the live cluster; none knows a platform's names. See each module.

mod certs;
mod check;
mod edge;
mod live;
mod mirrors;
mod objects;
mod platform;
mod present;
mod proxy;
mod rancher;
mod references;
mod report;
mod testrig;
mod workloads;

use anyhow::{bail, Context, Result};

use crate::cluster::Cluster;
use crate::options::VerifyOptions;
use crate::plan::Carried;
use crate::run::{self, Loaded, Tools};
use crate::state::State;
use check::Checks;
use report::{ClusterReport, Report};

pub fn run(a: &VerifyOptions) -> Result<()> {
    let l = run::load(&a.target)?;
    let report = run::runtime()?.block_on(async {
        let tools = Tools::new(&l, &a.render).await?;
        let carried = Carried::from_spec(&l.plan_dir.join(&l.plan.bundle))?;
        let mut clusters = Vec::new();
        for name in &l.clusters {
            let mut c = Checks::new(name);
            // A cluster that cannot be read is a finding of the report, not the end of it.
            if let Err(e) = verify_cluster(&mut c, a, &l, &tools, &carried, name).await {
                c.at(None);
                c.failed("cluster", format!("cluster {name}"), format!("{e:#}"));
            }
            clusters.push(ClusterReport::new(name, c.found));
        }
        Ok::<_, anyhow::Error>(Report::new(&a.target.site, &a.target.plan, clusters))
    })?;
    if a.target.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    if let Some(dir) = &a.report {
        report.write(dir)?;
        eprintln!("report: {} and {}", dir.join("verify.html").display(), dir.join("verify.json").display());
    }
    match report.failed() {
        0 => Ok(()),
        n => bail!("{n} check(s) failed"),
    }
}

async fn verify_cluster(
    c: &mut Checks,
    a: &VerifyOptions,
    l: &Loaded,
    tools: &Tools,
    carried: &Carried,
    name: &str,
) -> Result<()> {
    let cluster = Cluster::connect(name, &run::kubeconfig(&l.site, name)?).await?;
    let version = cluster.version().await?;
    let client = &cluster.client;
    let live = live::Snapshot::read(client).await?;
    workloads::api_services(c, &live);
    // A cluster whose discovery fails all the same (aggregated APIs that do not answer are left
    // out of it) has the plan rendered as for a cluster that cannot be asked; the rest is still
    // checked.
    let renderer = match run::renderer_for(tools, l, &a.render, &cluster, &version).await {
        Ok((renderer, _)) => renderer,
        Err(e) => {
            c.failed(
                "cluster",
                format!("discovery of cluster {name}"),
                format!("{e:#}; rendered without its API versions"),
            );
            tools.renderer(l, &a.render, version.trim_start_matches('v'))?
        }
    };
    let rendered = run::render_cluster(&renderer, &l.plan.clusters[name]).await.context("rendering the plan")?;
    let recorded = State::new(client, name).read().await?;
    // What a step that is not done should have made is not looked for: its step check says why.
    let done = |step: &str| recorded.get(step).is_some_and(|s| s.status == "done");
    let objects = objects::of_steps(&rendered, &done);

    let installed = workloads::steps(c, &rendered, &recorded);
    for r in rendered.iter().filter(|r| r.skipped.is_none() && !done(&r.step.id)) {
        c.at(Some(&r.step.id));
        c.skipped("objects", format!("objects of step {}", r.step.id), "not looked for: the step is not done");
    }
    c.at(None);
    present::check(c, client, &objects).await?;
    workloads::workloads(c, client, &objects, &live, &installed).await;
    if let Err(e) = references::check(c, client, &objects).await {
        c.at(None);
        c.failed("references", "references of the plan's objects", format!("not read: {e:#}"));
    }
    edge::check(c, client, name, &objects, &live, &l.site).await.context("checking the network edge")?;
    platform::check(c, client, &objects, &live, &tools.registry, carried, &renderer.work).await?;
    rancher::check(c, &cluster, &rendered, &objects, &l.site).await.context("asking Rancher")?;
    mirrors::check(c, client, &rendered, &live, &renderer.post.registry_address)
        .await
        .context("checking the node mirrors")?;
    if let Some(step) = &a.testrig {
        testrig::run(c, client, name, step, &rendered, &objects, &live).await.context("running the test rig")?;
    }
    Ok(())
}
