//! `berth network`: bridge networks (create, ls, inspect, rm, prune,
//! connect, disconnect), through the engine's network service.

use crate::containers::open;
use anyhow::{bail, Result};
use berth_engine::network::ipam::Want;
use berth_engine::network::model::{CreateRequest, Network};
use berth_engine::template::views::labels_text;
use clap::Subcommand;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum NetworkCmd {
    /// Create a bridge network (containers on it find each other by name).
    ///
    /// Examples:
    ///   berth network create app
    ///   berth network create --subnet 10.10.0.0/24 --gateway 10.10.0.1 app
    ///   berth network create --ipv6 --subnet fd00:10::/64 app6
    ///   berth network create --internal backend       (no way out)
    #[command(verbatim_doc_comment)]
    Create {
        name: String,
        /// bridge (the only driver).
        #[arg(short = 'd', long, default_value = "bridge")]
        driver: String,
        /// A subnet in CIDR form (repeat for an IPv4 and an IPv6 one).
        #[arg(long)]
        subnet: Vec<String>,
        /// The gateway of the subnet given at the same position.
        #[arg(long)]
        gateway: Vec<String>,
        /// Give containers addresses from this range of the subnet only.
        #[arg(long = "ip-range")]
        ip_range: Vec<String>,
        /// Give containers IPv6 addresses too.
        #[arg(long)]
        ipv6: bool,
        /// No traffic leaves the network, and none comes in from outside.
        #[arg(long)]
        internal: bool,
        /// Set a label (KEY=VALUE).
        #[arg(long)]
        label: Vec<String>,
        /// Driver options: mtu=N, com.docker.network.bridge.name=IFNAME,
        /// com.docker.network.driver.mtu=N.
        #[arg(short = 'o', long = "opt")]
        opt: Vec<String>,
        /// No DNS server for the network's containers.
        #[arg(long = "disable-dns")]
        disable_dns: bool,
    },
    /// List networks.
    #[command(alias = "list")]
    Ls {
        /// Only the ids.
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Keep networks matching KEY=VALUE: name, id, driver, label
        /// (KEY or KEY=VALUE), type (custom or builtin), dangling (true:
        /// no container on it).
        #[arg(short = 'f', long = "filter")]
        filter: Vec<String>,
        /// Full ids.
        #[arg(long = "no-trunc")]
        no_trunc: bool,
        /// Output: table, json, or a Go template ('{{.Name}}'; 'table ...'
        /// for a table): .ID .Name .Driver .Scope .IPv6 .Internal .Labels
        /// .CreatedAt.
        #[arg(long, value_name = "FORMAT", value_parser = crate::format::parse, default_value = "table")]
        format: crate::format::Format,
    },
    /// Show networks' details as Docker-compatible JSON.
    Inspect {
        /// A Go template run on each network ('{{.IPAM.Config}}').
        #[arg(short = 'f', long, value_name = "FORMAT", value_parser = crate::format::parse)]
        format: Option<crate::format::Format>,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove networks no container is on.
    #[command(alias = "remove")]
    Rm {
        /// Accepted for scripts: a network in use is never removed.
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove every user-defined network no container is on.
    ///
    /// Examples:
    ///   berth network prune --filter until=24h      (made over a day ago)
    ///   berth network prune --filter label=env=test --filter label!=keep
    #[command(verbatim_doc_comment)]
    Prune {
        /// Do not ask for confirmation (accepted; berth does not ask).
        #[arg(short = 'f', long)]
        force: bool,
        /// Only networks that pass: until=TIME|DURATION, label=KEY[=VALUE],
        /// label!=KEY[=VALUE] (repeat: all must hold).
        #[arg(long)]
        filter: Vec<String>,
    },
    /// Unmake what removed networks left on the host (started by rm and prune).
    #[command(hide = true)]
    Gc,
    /// Connect a container to a network (at once if it runs).
    Connect {
        network: String,
        container: String,
        /// Its IPv4 address on the network.
        #[arg(long)]
        ip: Option<String>,
        /// Its IPv6 address on the network.
        #[arg(long)]
        ip6: Option<String>,
        /// Another name for it on the network.
        #[arg(long)]
        alias: Vec<String>,
    },
    /// Disconnect a container from a network.
    Disconnect {
        network: String,
        container: String,
        /// Accepted for scripts.
        #[arg(short = 'f', long)]
        force: bool,
    },
}

/// A network in `network ls`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
struct NetworkRow {
    #[serde(rename = "ID")]
    id: String,
    name: String,
    driver: String,
    scope: String,
    #[serde(rename = "IPv6")]
    ipv6: bool,
    internal: bool,
    labels: String,
    created_at: String,
}

const HEADERS: &[(&str, &str)] = &[
    ("ID", "NETWORK ID"),
    ("Name", "NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("IPv6", "IPV6"),
    ("Internal", "INTERNAL"),
    ("Labels", "LABELS"),
    ("CreatedAt", "CREATED AT"),
];

fn kv(list: &[String], what: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for l in list {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        if k.is_empty() {
            bail!("{what} {l:?}: expected KEY=VALUE");
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// Whether `n` passes every `--filter` (same key: any value; different
/// keys: all).
fn keep(n: &Network, dangling: bool, filters: &[(String, String)]) -> Result<bool> {
    let mut by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (k, v) in filters {
        by_key.entry(k.as_str()).or_default().push(v.as_str());
    }
    for (k, vals) in by_key {
        let ok = vals.iter().any(|v| match k {
            "name" => n.name.contains(v),
            "id" => n.id.starts_with(v),
            "driver" => n.driver == *v,
            "label" => match v.split_once('=') {
                Some((lk, lv)) => n.labels.get(lk).is_some_and(|x| x == lv),
                None => n.labels.contains_key(*v),
            },
            "type" => match *v {
                "builtin" => berth_engine::network::model::is_builtin(&n.name),
                "custom" => !berth_engine::network::model::is_builtin(&n.name),
                _ => false,
            },
            "dangling" => matches!(*v, "true" | "1") == dangling,
            "scope" => *v == "local",
            _ => false,
        });
        if !matches!(
            k,
            "name" | "id" | "driver" | "label" | "type" | "dangling" | "scope"
        ) {
            bail!("network ls --filter: unknown key {k:?} (name, id, driver, label, type, dangling, scope)");
        }
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

pub fn network(root: &Path, run_root: &Path, c: NetworkCmd) -> Result<()> {
    let engine = open(root, run_root)?;
    match c {
        NetworkCmd::Create {
            name,
            driver,
            subnet,
            gateway,
            ip_range,
            ipv6,
            internal,
            label,
            opt,
            disable_dns,
        } => {
            let req = CreateRequest {
                name,
                driver: Some(driver),
                subnets: subnet,
                gateways: gateway,
                ip_ranges: ip_range,
                ipv6,
                internal,
                disable_dns,
                labels: kv(&label, "--label")?,
                options: kv(&opt, "-o")?,
            };
            let n = engine.network_create(&req)?;
            println!("{}", n.id);
        }
        NetworkCmd::Ls {
            quiet,
            filter,
            no_trunc,
            format,
        } => {
            let filters: Vec<(String, String)> = filter
                .iter()
                .map(|f| {
                    let (k, v) = f.split_once('=').unwrap_or((f.as_str(), ""));
                    (k.to_string(), v.to_string())
                })
                .collect();
            let mut list = Vec::new();
            for n in engine.network_list()? {
                // As Docker: the predefined networks are never dangling.
                let dangling = !berth_engine::network::model::is_builtin(&n.name)
                    && engine.network_containers(&n)?.is_empty();
                if keep(&n, dangling, &filters)? {
                    list.push(n);
                }
            }
            let id = |n: &Network| {
                if no_trunc {
                    n.id.clone()
                } else {
                    n.id[..12.min(n.id.len())].to_string()
                }
            };
            if quiet {
                for n in &list {
                    println!("{}", id(n));
                }
            } else if let crate::format::Format::Template { table, template } = &format {
                let rows: Vec<NetworkRow> = list
                    .iter()
                    .map(|n| NetworkRow {
                        id: id(n),
                        name: n.name.clone(),
                        driver: n.driver.clone(),
                        scope: "local".into(),
                        ipv6: n.ipv6,
                        internal: n.internal,
                        labels: labels_text(&n.labels),
                        created_at: crate::format::go_time(n.created),
                    })
                    .collect();
                crate::format::rows(template, *table, &rows, HEADERS)?;
            } else if matches!(format, crate::format::Format::Json) {
                let mut docs = Vec::new();
                for n in &list {
                    docs.push(engine.inspect_network(&n.id)?);
                }
                println!("{}", serde_json::to_string_pretty(&docs)?);
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|n| vec![id(n), n.name.clone(), n.driver.clone(), "local".into()])
                    .collect();
                crate::manage::table(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"], &rows)?;
            }
        }
        NetworkCmd::Inspect { names, format } => {
            crate::manage::inspect_each(&names, format.as_ref(), |n| engine.inspect_network(n))?
        }
        NetworkCmd::Rm { force: _, names } => {
            crate::manage::remove_each(&names, |n| engine.network_remove(n))?
        }
        NetworkCmd::Gc => engine.network_gc(),
        NetworkCmd::Prune { force: _, filter } => {
            let filter = berth_engine::prune::PruneFilter::parse(
                &filter,
                "network prune",
                berth_engine::logs::now_nanos(),
            )?;
            let gone = engine.network_prune(&filter)?;
            if !gone.is_empty() {
                println!("Deleted Networks:");
                for n in gone {
                    println!("{}", n.name);
                }
            }
        }
        NetworkCmd::Connect {
            network,
            container,
            ip,
            ip6,
            alias,
        } => {
            let want = Want {
                ipv4: ip
                    .map(|v| v.parse())
                    .transpose()
                    .map_err(|_| anyhow::anyhow!("--ip: not an IPv4 address"))?,
                ipv6: ip6
                    .map(|v| v.parse())
                    .transpose()
                    .map_err(|_| anyhow::anyhow!("--ip6: not an IPv6 address"))?,
                mac: None,
                aliases: alias,
            };
            engine.network_connect(&container, &network, &want)?;
        }
        NetworkCmd::Disconnect {
            network,
            container,
            force: _,
        } => {
            engine.network_disconnect(&container, &network)?;
        }
    }
    Ok(())
}
