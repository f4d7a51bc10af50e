//! Bridge networks as the engine uses them: the `network` commands, and a
//! container's endpoints from create to removal.
//!
//! - Create: each network the spec names gets an endpoint (an address of
//!   each of its families) in the network store, in the store's database
//!   (`berth_network::store`); released when the container is removed.
//! - Start ([`Engine::setup_network`]): the network's bridge and its
//!   nftables elements are made on first use (a marker under the run root
//!   says they were, this boot), a network namespace is bound at
//!   `<run root>/netns/<id>`, a veth pair per endpoint is made with its
//!   container end already inside, published ports become elements of
//!   berth's nft maps, and the DNS responder is told the container's names.
//!   What was set up is written first, as an intent, to
//!   `<run root>/netns/<id>.json`.
//! - End ([`Engine::teardown_network`], from the monitor's exit command):
//!   the port elements go, the namespace is unbound (its veth pairs go with
//!   it), the names are withdrawn, the intent file is removed.
//! - After a kill -9 anywhere in between, [`Engine::reconcile_networks`]
//!   (run by the network commands and every networked start) tears down
//!   what a container that does not run left, from its intent file, and
//!   drops endpoints whose container is gone.

use crate::containers::{Engine, Lock};
use crate::error::{io, option, Error, Result};
use crate::records::{Record, Status};
use berth_dns::config::{NetworkFile, Record as DnsRecord};
use berth_network::ipam::{Endpoint, Want};
use berth_network::model::{self, Network};
use berth_network::nft::{self, PortRule};
use berth_network::ports::{self, PortMapping, Proto};
use berth_network::store::NetStore;
use berth_network::{link, netns};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// A step that failed without failing the command: said once, on stderr
/// (the monitor's log, for its exit command).
macro_rules! warn {
    ($($a:tt)*) => { eprintln!("berth: warning: {}", format!($($a)*)) };
}

impl From<berth_network::Error> for Error {
    fn from(e: berth_network::Error) -> Error {
        Error::Network(e)
    }
}

/// What a start set up for a container's networks, written before it is
/// done (`<run root>/netns/<id>.json`), so that whoever finds it with the
/// container not running can undo it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Active {
    /// The ports published (host port chosen), as `berth port` shows them.
    pub ports: Vec<Published>,
    /// The networks whose DNS knows the container.
    pub dns: Vec<String>,
    /// The container end's MAC address on each network (by network id).
    pub macs: std::collections::BTreeMap<String, String>,
    /// The host ends of its veth pairs: deleted at teardown (the
    /// namespace may outlive it, held by a `--network container:` peer).
    pub veths: Vec<String>,
}

/// One published port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub proto: Proto,
    pub container_ip: IpAddr,
    pub container_port: u16,
}

impl Published {
    fn rule(&self) -> PortRule {
        PortRule {
            host_ip: self.host_ip,
            host_port: self.host_port,
            proto: self.proto,
            container_ip: self.container_ip,
            container_port: self.container_port,
        }
    }

    /// Whether it holds `port`/`proto` on `host_ip` (None: every
    /// address), so that no other container may publish it there.
    fn claims(&self, host_ip: Option<IpAddr>, port: u16, proto: Proto) -> bool {
        self.host_port == port
            && self.proto == proto
            && (self.host_ip.is_none() || host_ip.is_none() || self.host_ip == host_ip)
    }

    /// `0.0.0.0:8080->80/tcp`, as `docker ps` shows it.
    pub fn display(&self) -> String {
        let ip = match self.host_ip {
            Some(IpAddr::V6(a)) => format!("[{a}]"),
            Some(a) => a.to_string(),
            None if self.container_ip.is_ipv6() => "[::]".into(),
            None => "0.0.0.0".into(),
        };
        format!(
            "{ip}:{}->{}/{}",
            self.host_port, self.container_port, self.proto
        )
    }
}

/// What the start of a networked container needs from its networks for
/// the bundle: the namespace to join and the names for its /etc files.
#[derive(Clone, Debug, Default)]
pub struct NetSetup {
    pub netns: PathBuf,
    /// The container's addresses (for its /etc/hosts), first network first.
    pub addresses: Vec<IpAddr>,
    /// The first network's gateway (`host-gateway`).
    pub gateway: Option<IpAddr>,
    /// The name server for /etc/resolv.conf when a network has DNS: its
    /// gateway, where berth's responder listens.
    pub dns_server: Option<IpAddr>,
    /// The published host ports, for the monitor to hold (bound, so that
    /// no other program takes them while the DNAT serves them).
    pub hold: Vec<berth_monitor_proto::config::HeldPort>,
}

/// The search domain berth's responder answers (besides bare names).
pub const DNS_DOMAIN: &str = "dns.berth";

impl Engine {
    /// The network store (networks and endpoints), in the store's database.
    pub fn network_store(&self) -> NetStore {
        NetStore::new(self.images.db())
    }

    /// Held while networks' host state changes (bridges, nft elements, the
    /// DNS files); taken after a container's lock, never before one.
    fn network_lock(&self) -> Result<Lock> {
        let p = self.paths.run_root.join("locks").join("network.lock");
        let fd = berth_sys::fs::open(&p, libc::O_RDWR | libc::O_CREAT | libc::O_CLOEXEC, 0o600)
            .map_err(io(format!("open the network lock {}", p.display())))?;
        berth_sys::fs::flock(fd.as_fd(), true, false)
            .map_err(io(format!("lock {}", p.display())))?;
        Ok(Lock::from_fd(fd))
    }

    fn netns_dir(&self) -> PathBuf {
        self.paths.run_root.join("netns")
    }

    /// Where a container's network namespace is bound while it runs.
    pub fn netns_path(&self, id: &str) -> PathBuf {
        self.netns_dir().join(id)
    }

    fn active_path(&self, id: &str) -> PathBuf {
        self.netns_dir().join(format!("{id}.json"))
    }

    /// Noted while a `network connect` or `disconnect` changes a container
    /// ([`Engine::settle_locked`] finishes what a kill -9 left).
    fn change_marker(&self, id: &str) -> PathBuf {
        self.netns_dir().join(format!("{id}{CHANGE_SUFFIX}"))
    }

    /// Notes that container `id` is being connected to or disconnected
    /// from network `network` (its id, in the note: the names the
    /// responder serves for it are written again when the note is
    /// settled).
    fn mark_change(&self, id: &str, network: &str) -> Result<()> {
        let dir = self.netns_dir();
        berth_sys::fs::create_private_dir_all(&dir)
            .map_err(io(format!("create {}", dir.display())))?;
        let path = self.change_marker(id);
        berth_sys::fs::replace_file(&path, network.as_bytes(), 0o600)
            .map_err(io(format!("write {}", path.display())))
    }

    fn dns_dir(&self) -> PathBuf {
        self.paths.run_root.join("dns")
    }

    /// What the container's running start set up (None: not networked or
    /// not running).
    pub fn active_network(&self, id: &str) -> Option<Active> {
        let t = std::fs::read(self.active_path(id)).ok()?;
        serde_json::from_slice(&t).ok()
    }

    fn write_active(&self, id: &str, a: &Active) -> Result<()> {
        let p = self.active_path(id);
        let data = serde_json::to_vec(a)
            .map_err(|e| Error::Runtime(format!("serialise {}: {e}", p.display())))?;
        berth_sys::fs::replace_file(&p, &data, 0o600).map_err(io(format!("write {}", p.display())))
    }

    fn host_routes() -> Vec<ipnet::IpNet> {
        link::Netlink::open()
            .and_then(|mut n| n.routes())
            .unwrap_or_default()
    }

    /// A network by name or id; the default `bridge` is made the first
    /// time it is asked for.
    pub fn network(&self, name: &str) -> Result<Network> {
        let store = self.network_store();
        if let Some(n) = self.predefined_network(name) {
            return Ok(n);
        }
        match store.get(name) {
            Err(berth_network::Error::NotFound(_)) if name == model::DEFAULT_NETWORK => {
                // One transaction: parallel commands make it once.
                Ok(store.ensure_default(&Self::host_routes())?)
            }
            r => Ok(r?),
        }
    }

    /// `berth network create`: recorded only; its bridge and rules are
    /// made when its first container starts.
    pub fn network_create(&self, req: &model::CreateRequest) -> Result<Network> {
        needs_root(
            "network create",
            "bridge networks need root; rootless networking comes in a later release",
        )?;
        let store = self.network_store();
        // A removed network's bridge and routes, still there, would clash.
        if self.has_removed() {
            let _net = self.network_lock()?;
            self.unmake_removed_locked();
        }
        // The default network's subnet is taken before any other is chosen.
        self.network(model::DEFAULT_NETWORK)?;
        // Checked and stored in one transaction: parallel creates get
        // different subnets and bridges.
        // The host's interfaces: a bridge name berth picks is none of them.
        let links = link::Netlink::open()
            .and_then(|mut nl| nl.link_names())
            .unwrap_or_default();
        let n = store.create(req, &Self::host_routes(), &links)?;
        // An interface of the name given that berth did not make (another
        // engine's bridge, a host's) is never taken over, retuned or
        // removed.
        if links.contains(&n.bridge) && !self.ready_marker(&n).exists() {
            let _ = store.remove(&n.id);
            return Err(Error::Conflict(format!(
                "network {}: an interface named {} exists on the host already; name the bridge with -o com.docker.network.bridge.name=",
                n.name, n.bridge
            )));
        }
        self.network_event(&n, "create", &[]);
        Ok(n)
    }

    /// Every network, the default one and Docker's predefined `host` and
    /// `none` included.
    pub fn network_list(&self) -> Result<Vec<Network>> {
        self.reconcile_networks();
        let default = self.network(model::DEFAULT_NETWORK)?;
        let mut all = self.network_store().list()?;
        for name in ["host", "none"] {
            all.extend(model::predefined(name, default.created));
        }
        // By name, the predefined ones among the others (Docker's order).
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    /// `host` or `none` (by name or id), said made with the default network.
    fn predefined_network(&self, name: &str) -> Option<Network> {
        let created = || {
            self.network_store()
                .get(model::DEFAULT_NETWORK)
                .map_or(0, |n| n.created)
        };
        model::predefined(name, 0).map(|n| Network {
            created: created(),
            ..n
        })
    }

    /// Docker's refusal for what cannot be done to `host` and `none`.
    fn refuse_predefined(n: &Network, what: &str) -> Result<()> {
        if model::predefined(&n.id, 0).is_some() {
            return Err(Error::Conflict(format!(
                "network {}: {what} (it is a pre-defined network: use --network {} at create or run)",
                n.name, n.name
            )));
        }
        Ok(())
    }

    /// The containers on a network, with their endpoints.
    pub fn network_containers(&self, n: &Network) -> Result<Vec<(Record, Endpoint)>> {
        let mut out = Vec::new();
        for ep in self.network_store().endpoints_on(&n.id)? {
            if let Some(r) = self.records.get(&ep.container_id)? {
                out.push((r, ep));
            }
        }
        Ok(out)
    }

    /// `berth network rm`: refused while a container is on it. The record
    /// goes now; what the network has on the host (bridge, nft elements,
    /// DNS file) is unmade by a process of its own ([`Engine::network_gc`]):
    /// deleting a bridge, and releasing an nf_tables socket after deleting
    /// elements, wait for the kernel's RCU grace periods (10 to 20 ms each
    /// on a quiet host), which `network rm` need not wait for. A
    /// `network create` meanwhile finishes that work first.
    pub fn network_remove(&self, name: &str) -> Result<Network> {
        let n = self.network_forget(name)?;
        self.unmake_later();
        Ok(n)
    }

    /// Removes a network's record, having noted what it left on the host
    /// (`<run root>/networks-removed/<id>.json`, the intent a kill -9
    /// leaves for the next network command).
    fn network_forget(&self, name: &str) -> Result<Network> {
        self.reconcile_networks();
        let store = self.network_store();
        let n = match self.predefined_network(name) {
            Some(n) => n,
            None => store.get(name)?,
        };
        if model::is_builtin(&n.name) {
            // Docker's words.
            return Err(Error::Conflict(format!(
                "{} is a pre-defined network and cannot be removed",
                n.name
            )));
        }
        let users = self.network_containers(&n)?;
        if !users.is_empty() {
            let names: Vec<&str> = users.iter().map(|(r, _)| r.name.as_str()).collect();
            return Err(Error::Conflict(format!(
                "network {} is in use by container{} {}: remove {} or disconnect {} first",
                n.name,
                if names.len() > 1 { "s" } else { "" },
                names.join(", "),
                if names.len() > 1 { "them" } else { "it" },
                if names.len() > 1 { "them" } else { "it" },
            )));
        }
        let _net = self.network_lock()?;
        let dir = self.removed_dir();
        berth_sys::fs::create_private_dir_all(&dir)
            .map_err(io(format!("create {}", dir.display())))?;
        let path = dir.join(format!("{}.json", n.id));
        let data = serde_json::to_vec(&n)
            .map_err(|e| Error::Runtime(format!("serialise network {}: {e}", n.name)))?;
        berth_sys::fs::replace_file(&path, &data, 0o600)
            .map_err(io(format!("write {}", path.display())))?;
        store.remove(&n.id)?;
        self.network_event(&n, "destroy", &[]);
        Ok(n)
    }

    /// Where removed networks wait for their host state to be unmade.
    fn removed_dir(&self) -> PathBuf {
        self.paths.run_root.join("networks-removed")
    }

    fn has_removed(&self) -> bool {
        std::fs::read_dir(self.removed_dir()).is_ok_and(|mut rd| rd.next().is_some())
    }

    /// Starts `berth network gc` for what removed networks left; does the
    /// work here if it cannot be started (or this is not berth).
    fn unmake_later(&self) {
        let exe = std::env::current_exe()
            .ok()
            .filter(|p| p.file_name().is_some_and(|n| n == "berth"));
        let Some(exe) = exe else {
            return self.network_gc();
        };
        let args = [
            OsStr::new("--root"),
            self.paths.root.as_os_str(),
            OsStr::new("--run-root"),
            self.paths.run_root.as_os_str(),
            OsStr::new("network"),
            OsStr::new("gc"),
        ];
        // A process with one thread (the CLI) forks and goes on at once: it
        // exits soon, leaving the child to its parent's reaper. One with
        // more (the API service) may not fork; it spawns (posix_spawn,
        // which waits for the exec) and reaps.
        if single_threaded() {
            use std::os::unix::ffi::OsStrExt as _;
            let c = |a: &OsStr| std::ffi::CString::new(a.as_bytes()).ok();
            let argv: Option<Vec<_>> = std::iter::once(exe.as_os_str())
                .chain(args)
                .map(c)
                .collect();
            if let (Some(path), Some(argv)) = (c(exe.as_os_str()), argv) {
                // SAFETY: this process has a single thread (checked just
                // above; only this thread could start another).
                if unsafe { berth_sys::process::spawn_unwaited(&path, &argv) }.is_ok() {
                    return;
                }
            }
        }
        let child = std::process::Command::new(&exe)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        match child {
            // A long-lived caller (the API service) keeps no zombie.
            Ok(child) => crate::containers::reap_when_done(child),
            Err(_) => self.network_gc(),
        }
    }

    /// `berth network gc` (started by `network rm` and `prune`): unmakes
    /// what removed networks left on the host; then, with no container on
    /// any network, the default network's bridge and rules go too (its
    /// record stays): the last network removed leaves no berth table
    /// behind.
    pub fn network_gc(&self) {
        let Ok(_net) = self.network_lock() else {
            return;
        };
        if self.unmake_removed_locked() {
            self.unmake_if_idle_locked();
        }
    }

    /// Unmakes each removed network's host state, then forgets its note
    /// (the network lock held); true if there was any.
    fn unmake_removed_locked(&self) -> bool {
        let Ok(rd) = std::fs::read_dir(self.removed_dir()) else {
            return false;
        };
        let mut any = false;
        for e in rd.flatten() {
            let path = e.path();
            let n = std::fs::read(&path)
                .ok()
                .and_then(|d| serde_json::from_slice::<Network>(&d).ok());
            if let Some(n) = n {
                // Made again meanwhile (the same id cannot be): not ours.
                if self.network_store().get(&n.id).is_err() {
                    self.unmake_network(&n);
                }
            }
            let _ = std::fs::remove_file(&path);
            any = true;
        }
        any
    }

    /// With no container on any network: every network's bridge and
    /// rules go (the network lock held).
    fn unmake_if_idle_locked(&self) {
        let store = self.network_store();
        let Ok(all) = store.list() else { return };
        let idle = all
            .iter()
            .all(|o| store.endpoints_on(&o.id).is_ok_and(|e| e.is_empty()));
        if idle {
            for o in all {
                if self.ready_marker(&o).exists() {
                    self.unmake_network(&o);
                }
            }
        }
    }

    /// `berth network prune`: the user-defined networks no container is on
    /// that `filter` keeps (`until`, `label`, `label!`).
    pub fn network_prune(&self, filter: &crate::prune::PruneFilter) -> Result<Vec<Network>> {
        let mut gone = Vec::new();
        for n in self.network_list()? {
            if model::is_builtin(&n.name)
                || !filter.keeps(n.created, &n.labels)
                || !self.network_store().endpoints_on(&n.id)?.is_empty()
            {
                continue;
            }
            match self.network_forget(&n.id) {
                Ok(n) => gone.push(n),
                // Taken by a container meanwhile.
                Err(Error::Conflict(_)) => {}
                Err(e) => {
                    if !gone.is_empty() {
                        self.unmake_later();
                    }
                    return Err(e);
                }
            }
        }
        if !gone.is_empty() {
            self.unmake_later();
        }
        Ok(gone)
    }

    /// Removes a network's bridge, rules, DNS file and marker (under the
    /// network lock); what is already gone is fine.
    fn unmake_network(&self, n: &Network) {
        // Only a bridge berth made (this boot: the marker says so) is
        // removed.
        let ours = self.ready_marker(n).exists();
        if ours {
            if let Ok(mut nl) = link::Netlink::open() {
                if let Err(e) = nl.delete_link(&n.bridge) {
                    warn!("network {}: remove bridge {}: {e}", n.name, n.bridge);
                }
            }
        }
        let _ = std::fs::remove_file(self.ready_marker(n));
        if let Err(e) = nft::remove_network(&rules(n, Guard::default())) {
            warn!("network {}: remove its nftables elements: {e}", n.name);
        }
        self.restore_forwarding();
        let _ = berth_dns::control::remove_network(&self.dns_dir(), &n.id);
        // The network goes: a responder left without names exits now
        // rather than lingering for the next container.
        let synced = self.host.find_program("berth-dns").and_then(|program| {
            berth_dns::control::sync_or_stop(&self.dns_dir(), &program)
                .map_err(io("reload or stop the DNS responder berth-dns"))
        });
        if let Err(e) = synced {
            warn!("network {}: the DNS responder: {e}", n.name);
        }
    }

    fn ready_marker(&self, n: &Network) -> PathBuf {
        self.paths.run_root.join("networks").join(&n.id)
    }

    /// Where berth notes the forwarding it turned on itself (this boot).
    fn guard_path(&self) -> PathBuf {
        self.paths.run_root.join("networks").join(GUARD_FILE)
    }

    fn guard(&self) -> Guard {
        let text = std::fs::read_to_string(self.guard_path()).unwrap_or_default();
        Guard {
            v4: text.lines().any(|l| l == "ipv4"),
            v6: text.lines().any(|l| l == "ipv6"),
        }
    }

    /// Once the last of berth's networks is gone (its table with it, the
    /// guard too): the forwarding berth turned on is turned off again, so
    /// the host routes as it did before berth. Unless another bridge is on
    /// the host (another engine's, libvirt's), whose containers may route
    /// through it: then it is left on, as that engine would want.
    fn restore_forwarding(&self) {
        let dir = self.paths.run_root.join("networks");
        let any_left = std::fs::read_dir(&dir).is_ok_and(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_str().is_some_and(|n| n != GUARD_FILE))
        });
        let g = self.guard();
        if any_left || !(g.v4 || g.v6) {
            return;
        }
        let others = link::Netlink::open()
            .and_then(|mut nl| nl.bridge_names())
            .unwrap_or_default();
        if others.is_empty() {
            if let Err(e) = link::disable_forwarding(g.v4, g.v6) {
                warn!("turn forwarding off again (berth turned it on): {e}");
                return;
            }
        } else {
            warn!(
                "forwarding stays on (berth turned it on): bridge {} of another program may need it",
                others.join(", ")
            );
        }
        let _ = std::fs::remove_file(self.guard_path());
    }

    /// The network's bridge, addresses and nft elements, made once per
    /// boot (a marker under the run root says so); `force` makes them
    /// again (the bridge was removed behind berth's back).
    fn make_network(&self, n: &Network, force: bool) -> Result<()> {
        let marker = self.ready_marker(n);
        if !force && marker.exists() {
            // The bridge is there (an attach to a missing one makes it
            // again); the rules are checked each time, as a flush of the
            // ruleset (a restart of nftables.service) removes them: tens of
            // microseconds over netlink when they are there.
            if nft::add_network(&rules(n, self.guard()))? {
                self.restore_rules(n);
            }
            return Ok(());
        }
        let mut nl = link::Netlink::open()?;
        let addresses = n
            .subnets
            .iter()
            .filter_map(|s| {
                let gw = s.gateway?;
                ipnet::IpNet::new(gw, s.subnet.prefix_len()).ok()
            })
            .collect();
        nl.ensure_bridge(&link::Bridge {
            name: n.bridge.clone(),
            mtu: n.mtu,
            addresses,
            ipv6: n.ipv6,
        })?;
        let dir = marker.parent().unwrap_or(Path::new("/"));
        let _ = std::fs::create_dir_all(dir);
        if !n.internal {
            // Noted before forwarding is turned on (a kill -9 in between
            // leaves the note, and the next network's rules the guard; a
            // note of a family still off only turns it off again later).
            let (v4, v6) = link::forwarding_off(n.ipv6)?;
            if v4 || v6 {
                let g = self.guard();
                let mut text = String::new();
                if v4 || g.v4 {
                    text.push_str("ipv4\n");
                }
                if v6 || g.v6 {
                    text.push_str("ipv6\n");
                }
                let path = self.guard_path();
                berth_sys::fs::write_atomic(&path, text.as_bytes(), 0o644)
                    .map_err(io(format!("write {}", path.display())))?;
            }
            link::ensure_forwarding(n.ipv6)?;
        }
        if nft::add_network(&rules(n, self.guard()))? {
            self.restore_rules(n);
        }
        std::fs::write(&marker, b"").map_err(io(format!("write {}", marker.display())))?;
        Ok(())
    }

    /// After berth's table was made again (a flushed ruleset: `nft flush
    /// ruleset`, a restart of nftables.service) for network `made`: the
    /// elements of the other networks that have a bridge, and the ports of
    /// every running container (from their intent files), go back in.
    /// Best effort: what fails is warned of.
    fn restore_rules(&self, made: &Network) {
        let guard = self.guard();
        for o in self.network_store().list().unwrap_or_default() {
            if o.id != made.id && self.ready_marker(&o).exists() {
                if let Err(e) = nft::add_network(&rules(&o, guard)) {
                    warn!("network {}: put its nftables elements back: {e}", o.name);
                }
            }
        }
        let mut by_container: std::collections::BTreeMap<String, Vec<PortRule>> =
            std::collections::BTreeMap::new();
        for (id, p) in self.published_by_others("") {
            by_container.entry(id).or_default().push(p.rule());
        }
        for (id, ports) in by_container {
            if let Err(e) = nft::add_ports(&ports) {
                warn!(
                    "container {}: publish its ports again: {e}",
                    crate::containers::short(&id)
                );
            }
        }
    }

    /// At create (and again at start, for a record whose create died
    /// half-way): an endpoint on each network the spec names.
    pub(crate) fn allocate_endpoints(&self, rec: &Record) -> Result<Vec<(Network, Endpoint)>> {
        let store = self.network_store();
        let have = store.endpoints_of(&rec.id)?;
        let mut out = Vec::new();
        for a in &rec.spec.network.networks {
            let n = self.network(&a.network).and_then(|n| {
                Self::refuse_predefined(&n, "a container joins it alone, without another network")
                    .map(|()| n)
            });
            let n = n.map_err(|e| match e {
                Error::Network(berth_network::Error::NotFound(_)) => option(
                    "--network",
                    format!(
                        "network {} not found: create it with `berth network create {}`",
                        a.network, a.network
                    ),
                ),
                e => e,
            })?;
            if let Some(ep) = have.iter().find(|e| e.network_id == n.id) {
                out.push((n, ep.clone()));
                continue;
            }
            let want = Want {
                ipv4: a.ipv4,
                ipv6: a.ipv6,
                mac: a.mac.clone(),
                aliases: a.aliases.clone(),
            };
            let ep = store.allocate(&rec.id, &n, &want)?;
            out.push((n, ep));
        }
        // Endpoints of networks connected later (`network connect`) stay.
        for ep in have {
            if !out.iter().any(|(_, e)| e.network_id == ep.network_id) {
                if let Ok(n) = store.get(&ep.network_id) {
                    out.push((n, ep));
                }
            }
        }
        out.sort_by_key(|(_, e)| iface_order(&e.interface));
        Ok(out)
    }

    /// At create: the addresses, and the host ports asked for checked free
    /// (again at each start: a port may be taken meanwhile).
    pub(crate) fn create_network(&self, rec: &Record) -> Result<()> {
        if rec.spec.network.networks.is_empty() {
            return Ok(());
        }
        needs_root("--network", BRIDGE_NEEDS_ROOT)?;
        let eps = self.allocate_endpoints(rec)?;
        if eps.iter().any(|(n, _)| n.dns) {
            // Asked from the host's namespace by berth's responder: a
            // loopback or link-local server there is the host's own.
            for d in &rec.spec.network.dns {
                let bad = d.parse::<IpAddr>().is_ok_and(|a| {
                    a.is_loopback()
                        || matches!(a, IpAddr::V4(v) if v.is_link_local())
                        || matches!(a, IpAddr::V6(v) if v.segments()[0] & 0xffc0 == 0xfe80)
                });
                if bad {
                    return Err(option(
                        "--dns",
                        format!("{d}: on a network with DNS, berth's DNS server forwards to --dns servers from the host, where a loopback or link-local address is not the container's; give a server the host can reach"),
                    ));
                }
            }
        }
        let explicit: Vec<&PortMapping> = rec
            .spec
            .network
            .ports
            .iter()
            .filter(|m| m.host_port != 0)
            .collect();
        if explicit.is_empty() {
            return Ok(());
        }
        let _net = self.network_lock()?;
        let taken = self.published_live(&rec.id, &explicit);
        for m in explicit {
            check_host_port(m, &taken)?;
        }
        Ok(())
    }

    /// `--network container:NAME`: the namespace of that running
    /// container (its bound one if it is on bridge networks).
    pub(crate) fn shared_netns(&self, other: &str, me: &str) -> Result<PathBuf> {
        // A pod infra's bound namespace: joined whether or not its process
        // runs yet (no veths of its own: its teardown has nothing to keep).
        if let Some(path) = self.podns(other, "net") {
            return Ok(path);
        }
        let r = self.settle(self.records.find(other)?)?;
        if !matches!(r.state.status, Status::Running | Status::Restarting) || r.state.pid <= 0 {
            return Err(Error::Conflict(format!(
                "--network container:{other}: container {} is not running; start it first",
                r.name
            )));
        }
        let bound = self.netns_path(&r.id);
        if bound.exists() {
            // Its teardown must then delete its veths itself: this
            // container keeps the namespace (and them) alive.
            let _ = std::fs::write(self.netns_dir().join(format!("{}.peer-{me}", r.id)), b"");
            return Ok(bound);
        }
        Ok(PathBuf::from(format!("/proc/{}/ns/net", r.state.pid)))
    }

    /// Releases a removed container's addresses.
    pub(crate) fn release_endpoints_of(&self, rec: &Record) {
        if !rec.spec.network.networks.is_empty() {
            self.release_endpoints(&rec.id);
        }
    }

    /// Releases a container's addresses (by id: its record may be gone).
    pub(crate) fn release_endpoints(&self, id: &str) {
        if let Err(e) = self.network_store().release_all(id) {
            warn!("container {id}: release its network addresses: {e}");
        }
    }

    /// Sets up a starting container's networks (its lock held): None when
    /// it is on none.
    pub(crate) fn setup_network(
        &self,
        rec: &Record,
        image_ports: &[String],
    ) -> Result<Option<NetSetup>> {
        if rec.spec.network.networks.is_empty() {
            return Ok(None);
        }
        needs_root("--network", BRIDGE_NEEDS_ROOT)?;
        // No global reconciliation here (it would cost every start a look
        // at every running container): the network commands do it, and a
        // port that a dead run's intent still claims is checked below.
        let eps = self.allocate_endpoints(rec)?;
        let _net = self.network_lock()?;
        let dir = self.netns_dir();
        berth_sys::fs::create_private_dir_all(&dir)
            .map_err(io(format!("create {}", dir.display())))?;
        // A start that died half-way left these: undone first.
        self.undo_active(&rec.id, false);
        let path = self.netns_path(&rec.id);
        let result = self.setup_locked(rec, &eps, image_ports, &path);
        if result.is_err() {
            self.undo_active(&rec.id, false);
        }
        result.map(Some)
    }

    fn setup_locked(
        &self,
        rec: &Record,
        eps: &[(Network, Endpoint)],
        image_ports: &[String],
        path: &Path,
    ) -> Result<NetSetup> {
        for (n, _) in eps {
            self.make_network(n, false)?;
        }
        // The ports first (an error here costs nothing), then the intent.
        let published = self.choose_ports(rec, eps, image_ports)?;
        let dns: Vec<String> = eps
            .iter()
            .filter(|(n, _)| n.dns)
            .map(|(n, _)| n.id.clone())
            .collect();
        let veths: Vec<String> = eps.iter().map(|(n, _)| veth_name(&rec.id, &n.id)).collect();
        self.write_active(
            &rec.id,
            &Active {
                ports: published.clone(),
                dns: dns.clone(),
                veths: veths.clone(),
                ..Active::default()
            },
        )?;
        // The names first, and the responder started or reloaded on a
        // thread of its own while the namespace and links are made (a name
        // answered a moment before its address is up is harmless; a failed
        // start withdraws it again).
        let dns_program = if dns.is_empty() {
            None
        } else {
            for id in &dns {
                self.write_dns_file(id)?;
            }
            Some(self.host.find_program("berth-dns")?)
        };
        let dns_dir = self.dns_dir();
        std::thread::scope(|scope| {
            let dns_sync = dns_program.as_ref().map(|program| {
                scope.spawn(|| {
                    berth_dns::control::sync(&dns_dir, program)
                        .map_err(io("start or reload the DNS responder berth-dns"))
                })
            });
            let links = self.setup_links(rec, eps, path, &published, &dns, veths);
            let synced = match dns_sync.map(|h| h.join()) {
                None | Some(Ok(Ok(()))) => Ok(()),
                Some(Ok(Err(e))) => Err(e),
                // The thread runs only the call above, which returns its
                // errors.
                Some(Err(_)) => Err(Error::Runtime(
                    "start or reload the DNS responder berth-dns: its thread panicked".into(),
                )),
            };
            let setup = links?;
            synced.map(|()| setup)
        })
    }

    /// The namespace, the veth pairs and the published ports of
    /// [`Engine::setup_locked`].
    fn setup_links(
        &self,
        rec: &Record,
        eps: &[(Network, Endpoint)],
        path: &Path,
        published: &[Published],
        dns: &[String],
        veths: Vec<String>,
    ) -> Result<NetSetup> {
        netns::create(path)?;
        let mut setup = NetSetup {
            netns: path.to_path_buf(),
            hold: held_ports(published),
            ..NetSetup::default()
        };
        let mut routed = false;
        let mut macs = std::collections::BTreeMap::new();
        for (n, ep) in eps {
            let gateways: Vec<IpAddr> = if routed || n.internal {
                Vec::new()
            } else {
                routed = true;
                n.subnets.iter().filter_map(|s| s.gateway).collect()
            };
            let v = veth(rec, n, ep, gateways);
            let attached = match link::attach(path, &v) {
                Ok(a) => a,
                // The bridge went behind berth's back: made again, once.
                Err(_) if !bridge_exists(&n.bridge) => {
                    self.make_network(n, true)?;
                    link::attach(path, &v)?
                }
                Err(e) => return Err(e.into()),
            };
            macs.insert(n.id.clone(), mac_text(&attached.mac));
            setup.addresses.extend(ep.ipv4.map(IpAddr::V4));
            setup.addresses.extend(ep.ipv6.map(IpAddr::V6));
            if setup.gateway.is_none() {
                setup.gateway = n
                    .subnets
                    .iter()
                    .find_map(|s| s.gateway.filter(IpAddr::is_ipv4));
            }
            if n.dns && setup.dns_server.is_none() {
                // The responder listens on each gateway: the IPv4 one, or
                // on an IPv6-only network the IPv6 one (the container has
                // no IPv4 address to reach any other server with).
                let gw = |v4: bool| {
                    n.subnets
                        .iter()
                        .find_map(|s| s.gateway.filter(|g| g.is_ipv4() == v4))
                };
                setup.dns_server = gw(true).or_else(|| gw(false));
            }
        }
        self.write_active(
            &rec.id,
            &Active {
                ports: published.to_vec(),
                dns: dns.to_vec(),
                macs,
                veths,
            },
        )?;
        if !published.is_empty() {
            let rules: Vec<PortRule> = published.iter().map(Published::rule).collect();
            nft::add_ports(&rules)?;
        }
        Ok(setup)
    }

    /// The container's published ports with host ports chosen, checked
    /// free on the host and among berth's other containers.
    fn choose_ports(
        &self,
        rec: &Record,
        eps: &[(Network, Endpoint)],
        image_ports: &[String],
    ) -> Result<Vec<Published>> {
        let n = &rec.spec.network;
        let mut wanted: Vec<PortMapping> = n.ports.clone();
        if n.publish_all {
            let mut exposed: Vec<(u16, Proto)> = Vec::new();
            for e in image_ports.iter().chain(&n.expose) {
                for p in ports::parse_expose(e).map_err(|x| option("-P", x.to_string()))? {
                    if !exposed.contains(&p) {
                        exposed.push(p);
                    }
                }
            }
            exposed.sort_by_key(|(port, proto)| (*port, proto.to_string()));
            for (port, proto) in exposed {
                if !wanted
                    .iter()
                    .any(|m| m.container_port == port && m.proto == proto)
                {
                    wanted.push(PortMapping {
                        host_ip: None,
                        host_port: 0,
                        container_port: port,
                        proto,
                    });
                }
            }
        }
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        // Ports go to the container's address on its first network with a
        // way out: an internal network's containers are not reachable from
        // the host or beyond, published or not (Docker sets up no mapping
        // for them either).
        let Some((_, ep)) = eps.iter().find(|(n, _)| !n.internal) else {
            if !eps.is_empty() {
                warn!(
                    "container {}: it is on internal networks only, so its ports are not published",
                    rec.name
                );
            }
            return Ok(Vec::new());
        };
        let explicit: Vec<&PortMapping> = wanted.iter().filter(|m| m.host_port != 0).collect();
        let taken = self.published_live(&rec.id, &explicit);
        let mut out = Vec::new();
        for m in wanted {
            let host_port = if m.host_port == 0 {
                // Free on the host, and not one berth publishes (a DNAT
                // holds no socket).
                let mut tries = 0;
                loop {
                    let p = ports::pick_free(m.proto, m.host_ip)?;
                    tries += 1;
                    if !taken
                        .iter()
                        .chain(&out)
                        .any(|x| x.claims(m.host_ip, p, m.proto))
                        || tries > 20
                    {
                        break p;
                    }
                }
            } else {
                check_host_port(&m, taken.iter().chain(&out))?;
                m.host_port
            };
            let targets: Vec<IpAddr> = match m.host_ip {
                Some(IpAddr::V4(_)) => ep.ipv4.map(IpAddr::V4).into_iter().collect(),
                Some(IpAddr::V6(_)) => ep.ipv6.map(IpAddr::V6).into_iter().collect(),
                None => ep
                    .ipv4
                    .map(IpAddr::V4)
                    .into_iter()
                    .chain(ep.ipv6.map(IpAddr::V6))
                    .collect(),
            };
            if targets.is_empty() {
                return Err(option(
                    "--publish",
                    format!(
                        "{}: the container has no address of that family on its first non-internal network",
                        m.host_ip.map_or_else(String::new, |a| a.to_string())
                    ),
                ));
            }
            for t in targets {
                out.push(Published {
                    host_ip: m.host_ip,
                    host_port,
                    proto: m.proto,
                    container_ip: t,
                    container_port: m.container_port,
                });
            }
        }
        Ok(out)
    }

    /// The ports other running containers publish (from their intent
    /// files).
    fn published_by_others(&self, id: &str) -> Vec<(String, Published)> {
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(self.netns_dir()) else {
            return out;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(other) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if other != id {
                let ports = self
                    .active_network(other)
                    .map(|a| a.ports)
                    .unwrap_or_default();
                out.extend(ports.into_iter().map(|p| (other.to_string(), p)));
            }
        }
        out
    }

    /// The ports other running containers publish, after undoing what a
    /// container that no longer runs left claiming one of `wanted` (the
    /// network lock held): a dead run's intent never blocks a port.
    fn published_live(&self, id: &str, wanted: &[&PortMapping]) -> Vec<Published> {
        let mut taken = self.published_by_others(id);
        let claims = |p: &Published| {
            wanted
                .iter()
                .any(|m| p.claims(m.host_ip, m.host_port, m.proto))
        };
        let mut suspects: Vec<String> = taken
            .iter()
            .filter(|(_, p)| claims(p))
            .map(|(o, _)| o.clone())
            .collect();
        suspects.dedup();
        for other in suspects {
            if self.reconcile_one_locked(&other) {
                taken.retain(|(o, _)| *o != other);
            }
        }
        taken.into_iter().map(|(_, p)| p).collect()
    }

    /// The networks a container's spec names (those that exist), in the
    /// order it joined them.
    fn spec_networks(&self, spec: &crate::specgen::ContainerSpec) -> Vec<Network> {
        let store = self.network_store();
        spec.network
            .networks
            .iter()
            .filter_map(|a| store.get(&a.network).ok())
            .collect()
    }

    /// A default route per family in the container's namespace, via the
    /// first of `nets` with a way out that has a gateway of that family,
    /// unless it has one already ([`link::ensure_default_routes`]).
    fn route_out(&self, id: &str, nets: &[Network]) -> Result<()> {
        let gateways: Vec<IpAddr> = nets
            .iter()
            .filter(|n| !n.internal)
            .flat_map(|n| n.subnets.iter().filter_map(|s| s.gateway))
            .collect();
        Ok(link::ensure_default_routes(
            &self.netns_path(id),
            &gateways,
        )?)
    }

    /// Finishes a `network connect` or `disconnect` that a kill -9 cut
    /// short (the network lock held; skipped while the container's lock is
    /// held: by that very change, still at work, or another command, and
    /// the next network command comes back to it). The container's spec
    /// says which networks it is on: an endpoint of another network is
    /// undone (its veth, ports, names and address), and on a running
    /// container an endpoint of a network the spec names that was never
    /// plugged in is plugged in now.
    fn settle_locked(&self, id: &str) {
        let Some(_lock) = self.try_lock(id) else {
            return;
        };
        let marker = self.change_marker(id);
        let rec = match self.records.get(id) {
            Ok(Some(r)) => match self.refresh_locked(r) {
                Ok(r) => r,
                Err(_) => return,
            },
            // Removed: `rm` released its endpoints (the lock file is
            // try_lock's, just made).
            Ok(None) => {
                let _ = std::fs::remove_file(&marker);
                let _ = std::fs::remove_file(self.paths.lock(id));
                return;
            }
            Err(_) => return,
        };
        let store = self.network_store();
        let Ok(eps) = store.endpoints_of(id) else {
            return;
        };
        let named = self.spec_networks(&rec.spec);
        let running = matches!(rec.state.status, Status::Running | Status::Restarting)
            && self.netns_path(id).exists();
        let mut settled = true;
        for ep in &eps {
            if named.iter().any(|n| n.id == ep.network_id) {
                continue;
            }
            let r = match store.get(&ep.network_id) {
                Ok(n) if running => self.unplug_locked(&rec, &rec.spec, &n),
                _ => store.release(id, &ep.network_id).map_err(Into::into),
            };
            if let Err(e) = r {
                warn!("container {}: finish its disconnect: {e}", rec.name);
                settled = false;
            }
        }
        if running {
            let plugged = self.active_network(id).unwrap_or_default().macs;
            for n in &named {
                let Some(ep) = eps.iter().find(|e| e.network_id == n.id) else {
                    continue;
                };
                if plugged.contains_key(&n.id) {
                    continue;
                }
                if let Err(e) = self.connect_running(&rec, n, ep) {
                    warn!(
                        "container {}: finish its connect to {}: {e}",
                        rec.name, n.name
                    );
                    settled = false;
                }
            }
            // A change cut short after its interface, before its route.
            if let Err(e) = self.route_out(id, &named) {
                warn!("container {}: its default route: {e}", rec.name);
                settled = false;
            }
        }
        // ... or before the names: the network the note names, and every
        // one the container is on, serve what the store says again.
        let noted = std::fs::read_to_string(&marker).unwrap_or_default();
        let mut dns: Vec<&str> = named
            .iter()
            .filter(|n| n.dns)
            .map(|n| n.id.as_str())
            .collect();
        if !noted.is_empty() && !dns.contains(&noted.as_str()) {
            dns.push(noted.as_str());
        }
        if !dns.is_empty() {
            for n in &dns {
                let _ = self.write_dns_file(n);
            }
            if let Err(e) = self.sync_dns() {
                warn!("container {}: the DNS responder: {e}", rec.name);
                settled = false;
            }
        }
        if settled {
            let _ = std::fs::remove_file(&marker);
        }
    }

    /// Undoes a container's intent if it does not run (the network lock
    /// held); true if it was undone.
    fn reconcile_one_locked(&self, id: &str) -> bool {
        // A start in progress holds the container's lock: left alone.
        let Some(_lock) = self.try_lock(id) else {
            return false;
        };
        let running = match self.records.get(id) {
            Ok(Some(r)) => match self.refresh_locked(r) {
                Ok(r) => matches!(r.state.status, Status::Running | Status::Restarting),
                Err(_) => return false,
            },
            Ok(None) => false,
            Err(_) => return false,
        };
        if running {
            return false;
        }
        self.undo_active(id, false);
        if matches!(self.records.get(id), Ok(None)) {
            // A removed container's lock file was made by try_lock.
            let _ = std::fs::remove_file(self.paths.lock(id));
        }
        true
    }

    /// Undoes what a container's intent file says (the network lock held):
    /// its port elements, veth pairs, namespace and names; the intent file
    /// goes last, so a kill -9 in between leaves it for the next one.
    ///
    /// `defer_ports`: the port elements stay, and so does an intent file
    /// listing only them, for the monitor's exit command to remove
    /// ([`Engine::undo_leftover_network`]). A process that deleted set
    /// elements pays an RCU grace period (10 to 15 ms on a quiet host)
    /// when it closes its nf_tables socket, at its exit: the kernel
    /// flushes its destroy work then. `run --rm` returns without that wait.
    /// Meanwhile the port stays published to the dead address, and a run
    /// that wants it undoes the leftover first ([`Engine::published_live`]).
    fn undo_active(&self, id: &str, defer_ports: bool) {
        let path = self.netns_path(id);
        let active = self.active_network(id);
        let defer_ports = defer_ports && active.as_ref().is_some_and(|a| !a.ports.is_empty());
        if let Some(a) = &active {
            if !a.ports.is_empty() && !defer_ports {
                remove_published(id, &a.ports);
            }
            // Unbinding the namespace removes its veth pairs (the kernel
            // does it after us, for free), unless a `--network container:`
            // peer keeps it: then they are deleted here (a deletion costs
            // the caller ~20 ms of the kernel's unregistering).
            let peers = self.peer_files(id);
            if !peers.is_empty() {
                for v in &a.veths {
                    if let Err(e) = link::detach(v) {
                        warn!("container {id}: remove its veth {v}: {e}");
                    }
                }
                for p in peers {
                    let _ = std::fs::remove_file(p);
                }
            }
        }
        if let Err(e) = netns::remove(&path) {
            warn!("container {id}: remove its network namespace: {e}");
        }
        if let Some(mut a) = active {
            if !a.dns.is_empty() {
                // Its names withdrawn before the intent goes.
                let nets = std::mem::take(&mut a.dns);
                let _ = self.write_active(id, &a);
                for n in &nets {
                    let _ = self.write_dns_file(n);
                }
                if let Err(e) = self.sync_dns() {
                    warn!("container {id}: the DNS responder: {e}");
                }
            }
            if defer_ports {
                let left = Active {
                    ports: a.ports,
                    ..Active::default()
                };
                match self.write_active(id, &left) {
                    Ok(()) => return,
                    Err(e) => {
                        // Not left half-said: removed now after all.
                        warn!("container {id}: leave its published ports to its monitor: {e}");
                        remove_published(id, &left.ports);
                    }
                }
            }
        }
        let _ = std::fs::remove_file(self.active_path(id));
    }

    /// At a container's end (its lock held): undoes its network setup.
    /// `defer_ports`: see [`Engine::undo_active`]; only for a client whose
    /// container's monitor runs its exit command after it.
    pub(crate) fn teardown_network(&self, id: &str, defer_ports: bool) {
        if !self.active_path(id).exists() && !self.netns_path(id).exists() {
            return;
        }
        match self.network_lock() {
            Ok(_net) => self.undo_active(id, defer_ports),
            Err(e) => warn!("container {id}: tear down its network: {e}"),
        }
    }

    /// Whether a torn-down container left its port elements to its
    /// monitor's exit command (see [`Engine::undo_active`]).
    pub(crate) fn left_network(&self, id: &str) -> bool {
        self.active_path(id).exists()
    }

    /// The monitor's exit command for a container already removed: the
    /// port elements its client left (see [`Engine::undo_active`]), unless
    /// a run that wanted the port undid them first.
    pub(crate) fn undo_leftover_network(&self, id: &str) {
        self.teardown_network(id, false);
    }

    /// Tears down what containers that do not run left (a kill -9 during
    /// a start or before an exit command), and drops the endpoints of
    /// containers that are gone. Best effort: every berth command that
    /// touches networks runs it.
    pub fn reconcile_networks(&self) {
        // Removed networks whose `network gc` was killed (or is running:
        // then this waits for it and finds nothing left).
        if self.has_removed() {
            self.network_gc();
        }
        let mut stale = Vec::new();
        let mut changing = Vec::new();
        if let Ok(rd) = std::fs::read_dir(self.netns_dir()) {
            for e in rd.flatten() {
                let name = e.file_name();
                let Some(n) = name.to_str() else { continue };
                if n.contains(".peer-") {
                    continue;
                }
                if let Some(id) = n.strip_suffix(CHANGE_SUFFIX) {
                    changing.push(id.to_string());
                    continue;
                }
                let id = n.strip_suffix(".json").unwrap_or(n).to_string();
                if !stale.contains(&id) {
                    stale.push(id);
                }
            }
        }
        for id in stale {
            if let Ok(_net) = self.network_lock() {
                self.reconcile_one_locked(&id);
            }
        }
        for id in changing {
            if let Ok(_net) = self.network_lock() {
                self.settle_locked(&id);
            }
        }
        // A responder killed -9 is started again while it has names to
        // serve.
        if berth_dns::control::running(&self.dns_dir()).is_none() && self.has_dns_files() {
            if let Ok(_net) = self.network_lock() {
                if let Err(e) = self.sync_dns() {
                    warn!("the DNS responder: {e}");
                }
            }
        }
        if let Ok(all) = self.records.all() {
            let live: HashSet<String> = all.into_iter().map(|r| r.id).collect();
            if let Err(e) = self.network_store().reconcile(&live) {
                warn!("reconcile network endpoints: {e}");
            }
        }
    }

    /// The markers of containers that joined `id`'s namespace.
    fn peer_files(&self, id: &str) -> Vec<PathBuf> {
        let prefix = format!("{id}.peer-");
        std::fs::read_dir(self.netns_dir())
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn has_dns_files(&self) -> bool {
        std::fs::read_dir(self.dns_dir()).is_ok_and(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".json"))
        })
    }

    /// Rewrites one network's DNS file from the running containers on it.
    fn write_dns_file(&self, network_id: &str) -> Result<()> {
        let dir = self.dns_dir();
        let Ok(n) = self.network_store().get(network_id) else {
            let _ = berth_dns::control::remove_network(&dir, network_id);
            return Ok(());
        };
        let mut records = Vec::new();
        for (r, ep) in self.network_containers(&n)? {
            let on = self
                .active_network(&r.id)
                .is_some_and(|a| a.dns.contains(&n.id));
            if !on {
                continue;
            }
            let mut names = vec![r.name.clone()];
            if !self.kube_withholds_aliases(&r) {
                names.extend(ep.aliases.iter().cloned());
            }
            records.push(DnsRecord {
                id: r.id.clone(),
                names,
                ipv4: ep.ipv4.into_iter().collect(),
                ipv6: ep.ipv6.into_iter().collect(),
                dns_servers: if n.internal {
                    Vec::new()
                } else {
                    r.spec
                        .network
                        .dns
                        .iter()
                        .filter_map(|d| d.parse::<IpAddr>().ok())
                        .map(|a| SocketAddr::new(a, 53))
                        .collect()
                },
            });
        }
        if records.is_empty() {
            return berth_dns::control::remove_network(&dir, &n.id)
                .map_err(io(format!("remove the DNS file of network {}", n.name)));
        }
        let file = NetworkFile {
            network: n.name.clone(),
            listen: n.subnets.iter().filter_map(|s| s.gateway).collect(),
            // An internal network forwards nothing.
            upstreams: if n.internal {
                Vec::new()
            } else {
                berth_network::resolv::host_upstreams(
                    Path::new("/etc/resolv.conf"),
                    Path::new("/run/systemd/resolve/resolv.conf"),
                )
            },
            records,
            // Only the network's own containers are answered.
            sources: n.subnets.iter().map(|s| s.subnet.to_string()).collect(),
            internal: n.internal,
        };
        berth_dns::control::write_network(&dir, &n.id, &file)
            .map_err(io(format!("write the DNS file of network {}", n.name)))
    }

    /// Starts, reloads or stops the responder to match its files.
    fn sync_dns(&self) -> Result<()> {
        let program = self.host.find_program("berth-dns")?;
        berth_dns::control::sync(&self.dns_dir(), &program)
            .map_err(io("start or reload the DNS responder berth-dns"))
    }

    /// Tells the DNS responder again about a running container (renamed,
    /// or an alias changed).
    pub(crate) fn refresh_dns(&self, id: &str) {
        let Some(a) = self.active_network(id) else {
            return;
        };
        if a.dns.is_empty() {
            return;
        }
        if let Ok(_net) = self.network_lock() {
            for n in &a.dns {
                let _ = self.write_dns_file(n);
            }
            if let Err(e) = self.sync_dns() {
                warn!("container {id}: the DNS responder: {e}");
            }
        }
    }

    /// `berth network connect`: on a running container the endpoint is
    /// set up at once, else at its next start.
    pub fn network_connect(&self, container: &str, network: &str, want: &Want) -> Result<()> {
        let rec = self.records.find(container)?;
        let _lock = self.lock(&rec.id)?;
        let rec = self.refresh_locked(rec)?;
        let n = self.network(network)?;
        Self::refuse_predefined(
            &n,
            "containers cannot be connected to it or disconnected from it",
        )?;
        if n.name == model::DEFAULT_NETWORK
            && (want.ipv4.is_some() || want.ipv6.is_some() || !want.aliases.is_empty())
        {
            return Err(option(
                "network connect",
                "--ip, --ip6 and --alias are supported on user-defined networks only (not the default bridge), as in Docker",
            ));
        }
        if rec.spec.namespaces.net != crate::specgen::NamespaceMode::Private {
            return Err(Error::Conflict(format!(
                "container {} shares the network namespace {}: it cannot be connected to a network",
                rec.name, rec.spec.namespaces.net
            )));
        }
        if rec.spec.network.networks.is_empty() && !rec.spec.network.disconnected {
            return Err(Error::Conflict(format!(
                "container {} has --network none: it cannot be connected to a network; create it with --network {}",
                rec.name, n.name
            )));
        }
        let store = self.network_store();
        if store
            .endpoints_of(&rec.id)?
            .iter()
            .any(|e| e.network_id == n.id)
        {
            return Err(Error::Conflict(format!(
                "container {} is already on network {}",
                rec.name, n.name
            )));
        }
        let running = matches!(rec.state.status, Status::Running | Status::Restarting)
            && self.netns_path(&rec.id).exists();
        // Until it is done, the change is noted: a kill -9 in between is
        // settled by the next network command ([`Engine::settle_locked`]).
        self.mark_change(&rec.id, &n.id)?;
        let r = self.connect_marked(&rec, &n, want, running);
        let _ = std::fs::remove_file(self.change_marker(&rec.id));
        r?;
        self.network_event(&n, "connect", &[("container", rec.id.clone())]);
        Ok(())
    }

    /// [`Engine::network_connect`] once its change is noted.
    fn connect_marked(&self, rec: &Record, n: &Network, want: &Want, running: bool) -> Result<()> {
        let store = self.network_store();
        let ep = store.allocate(&rec.id, n, want)?;
        // The spec names it: a restart brings it back.
        let mut spec = rec.spec.clone();
        spec.network.disconnected = false;
        spec.network
            .networks
            .push(crate::specgen::NetworkAttachment {
                network: n.name.clone(),
                ipv4: want.ipv4,
                ipv6: want.ipv6,
                mac: want.mac.clone(),
                aliases: want.aliases.clone(),
            });
        if let Err(e) = self.records.set_spec(&rec.id, &spec) {
            let _ = store.release(&rec.id, &n.id);
            return Err(e);
        }
        if running {
            let _net = self.network_lock()?;
            let r = self.connect_running(rec, n, &ep);
            if let Err(e) = r {
                let _ = link::detach(&veth_name(&rec.id, &n.id));
                let _ = store.release(&rec.id, &n.id);
                let _ = self.records.set_spec(&rec.id, &rec.spec);
                return Err(e);
            }
        }
        Ok(())
    }

    fn connect_running(&self, rec: &Record, n: &Network, ep: &Endpoint) -> Result<()> {
        self.make_network(n, false)?;
        let mut active = self.active_network(&rec.id).unwrap_or_default();
        // (Listed already when a connect cut short is finished.)
        if n.dns && !active.dns.contains(&n.id) {
            active.dns.push(n.id.clone());
        }
        let v = veth_name(&rec.id, &n.id);
        if !active.veths.contains(&v) {
            active.veths.push(v);
        }
        self.write_active(&rec.id, &active)?;
        let a = link::attach(&self.netns_path(&rec.id), &veth(rec, n, ep, Vec::new()))?;
        active.macs.insert(n.id.clone(), mac_text(&a.mac));
        self.write_active(&rec.id, &active)?;
        // A container without a route out (on internal networks only, or
        // disconnected from the one that had it) gets this network's.
        self.route_out(&rec.id, std::slice::from_ref(n))?;
        if n.dns {
            self.write_dns_file(&n.id)?;
            self.sync_dns()?;
        }
        Ok(())
    }

    /// `berth network disconnect`.
    pub fn network_disconnect(&self, container: &str, network: &str) -> Result<()> {
        let rec = self.records.find(container)?;
        let _lock = self.lock(&rec.id)?;
        let rec = self.refresh_locked(rec)?;
        if let Some(n) = self.predefined_network(network) {
            Self::refuse_predefined(
                &n,
                "containers cannot be connected to it or disconnected from it",
            )?;
        }
        let n = self.network_store().get(network)?;
        let store = self.network_store();
        if !store
            .endpoints_of(&rec.id)?
            .iter()
            .any(|e| e.network_id == n.id)
        {
            return Err(Error::Conflict(format!(
                "container {} is not on network {}",
                rec.name, n.name
            )));
        }
        // Noted until done, as a connect is.
        self.mark_change(&rec.id, &n.id)?;
        // The spec no longer names it: a restart does not bring it back.
        let mut spec = rec.spec.clone();
        spec.network
            .networks
            .retain(|a| a.network != n.name && a.network != n.id);
        spec.network.disconnected = spec.network.networks.is_empty();
        self.records.set_spec(&rec.id, &spec)?;
        let running = matches!(rec.state.status, Status::Running | Status::Restarting);
        let _net = self.network_lock()?;
        if running && self.netns_path(&rec.id).exists() {
            self.unplug_locked(&rec, &spec, &n)?;
        } else {
            store.release(&rec.id, &n.id)?;
        }
        let _ = std::fs::remove_file(self.change_marker(&rec.id));
        self.network_event(&n, "disconnect", &[("container", rec.id.clone())]);
        Ok(())
    }

    /// A running container's endpoint on `n` undone (the container's and
    /// the network lock held; `spec` no longer names `n`): its veth, the
    /// ports published to its address there, its names, the address, and
    /// the default route moved to the next network. Each step may be done
    /// already (a `network disconnect` killed half-way, finished by the
    /// next network command).
    fn unplug_locked(
        &self,
        rec: &Record,
        spec: &crate::specgen::ContainerSpec,
        n: &Network,
    ) -> Result<()> {
        let store = self.network_store();
        link::detach(&veth_name(&rec.id, &n.id))?;
        if let Some(mut a) = self.active_network(&rec.id) {
            let before = a.ports.len();
            // Ports published to its address on that network go too.
            let addrs: Vec<IpAddr> = store
                .endpoints_of(&rec.id)?
                .iter()
                .filter(|e| e.network_id == n.id)
                .flat_map(|e| {
                    e.ipv4
                        .map(IpAddr::V4)
                        .into_iter()
                        .chain(e.ipv6.map(IpAddr::V6))
                })
                .collect();
            let gone: Vec<PortRule> = a
                .ports
                .iter()
                .filter(|p| addrs.contains(&p.container_ip))
                .map(Published::rule)
                .collect();
            a.ports.retain(|p| !addrs.contains(&p.container_ip));
            a.dns.retain(|d| *d != n.id);
            a.veths.retain(|v| *v != veth_name(&rec.id, &n.id));
            a.macs.remove(&n.id);
            // The elements first: the intent still lists them until
            // they are gone.
            if a.ports.len() != before {
                nft::remove_ports(&gone)?;
            }
            self.write_active(&rec.id, &a)?;
        }
        store.release(&rec.id, &n.id)?;
        if n.dns {
            self.write_dns_file(&n.id)?;
            self.sync_dns()?;
        }
        // The default route left with that network's interface: the
        // next network it is on (in the order it joined them) gives one.
        self.route_out(&rec.id, &self.spec_networks(spec))
    }

    fn network_event(&self, n: &Network, action: &str, extra: &[(&str, String)]) {
        let mut attrs = std::collections::BTreeMap::new();
        attrs.insert("name".to_string(), n.name.clone());
        attrs.insert("type".to_string(), n.driver.clone());
        for (k, v) in extra {
            attrs.insert((*k).to_string(), v.clone());
        }
        self.record_event("network", action, &n.id, attrs);
    }
}

/// The suffix of a container's change marker in the netns directory.
const CHANGE_SUFFIX: &str = ".change";

/// Whether this process has a single thread (`/proc/self/task` lists one
/// task): then it may fork (see the house rule on forks).
fn single_threaded() -> bool {
    std::fs::read_dir("/proc/self/task").is_ok_and(|rd| rd.take(2).count() == 1)
}

fn mac_text(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `.NetworkSettings` of `docker inspect`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkSettings {
    pub bridge: String,
    #[serde(rename = "SandboxID")]
    pub sandbox_id: String,
    pub hairpin_mode: bool,
    /// `{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}`; an exposed
    /// port not published maps to null.
    pub ports: BTreeMap<String, Option<Vec<PortBinding>>>,
    /// The network namespace's path while it runs.
    pub sandbox_key: String,
    /// The first network's, as Docker shows the default bridge's.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub gateway: String,
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: u8,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    pub mac_address: String,
    pub networks: BTreeMap<String, EndpointSettings>,
}

/// One network of `.NetworkSettings.Networks`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointSettings {
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<IpamConfig>,
    pub aliases: Option<Vec<String>>,
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub gateway: String,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: u8,
    pub mac_address: String,
}

/// The addresses asked for (`--ip`, `--ip6`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IpamConfig {
    #[serde(rename = "IPv4Address", skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<String>,
    #[serde(rename = "IPv6Address", skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<String>,
}

/// One host binding of a port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortBinding {
    pub host_ip: String,
    pub host_port: String,
}

/// `-p` as `.HostConfig.PortBindings` shows it (a port chosen at start
/// is "").
pub fn port_bindings(ports: &[PortMapping]) -> BTreeMap<String, Vec<PortBinding>> {
    let mut out: BTreeMap<String, Vec<PortBinding>> = BTreeMap::new();
    for p in ports {
        out.entry(format!("{}/{}", p.container_port, p.proto))
            .or_default()
            .push(PortBinding {
                host_ip: p.host_ip.map(|a| a.to_string()).unwrap_or_default(),
                host_port: if p.host_port == 0 {
                    String::new()
                } else {
                    p.host_port.to_string()
                },
            });
    }
    out
}

/// `docker network inspect`'s document.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkInspect {
    pub name: String,
    pub id: String,
    pub created: String,
    pub scope: String,
    pub driver: String,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    pub ipam: NetworkIpam,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    pub containers: BTreeMap<String, NetworkContainer>,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// podman's: whether berth's DNS serves it.
    #[serde(rename = "DNSEnabled")]
    pub dns_enabled: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkIpam {
    pub driver: String,
    pub options: BTreeMap<String, String>,
    pub config: Vec<IpamPool>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamPool {
    pub subnet: String,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub gateway: String,
    #[serde(rename = "IPRange", skip_serializing_if = "String::is_empty", default)]
    pub ip_range: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkContainer {
    pub name: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub mac_address: String,
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
}

fn prefix_of(n: &Network, ip: IpAddr) -> u8 {
    n.subnets
        .iter()
        .find(|s| s.subnet.contains(&ip))
        .map_or(0, |s| s.subnet.prefix_len())
}

fn gateway_of(n: &Network, v6: bool) -> String {
    n.subnets
        .iter()
        .filter_map(|s| s.gateway)
        .find(|g| g.is_ipv6() == v6)
        .map(|g| g.to_string())
        .unwrap_or_default()
}

/// An endpoint's id: fixed by the container and the network.
fn endpoint_id(container_id: &str, network_id: &str) -> String {
    use sha2::Digest as _;
    let h = sha2::Sha256::digest(format!("endpoint {container_id}/{network_id}").as_bytes());
    h.iter().map(|b| format!("{b:02x}")).collect()
}

impl Engine {
    /// `.NetworkSettings` of a container (addresses while it runs, and the
    /// ones it holds when it does not).
    pub fn network_settings(&self, r: &Record) -> NetworkSettings {
        let mut out = NetworkSettings::default();
        if r.spec.network.networks.is_empty() {
            return out;
        }
        let active = self.active_network(&r.id);
        let store = self.network_store();
        let eps = store.endpoints_of(&r.id).unwrap_or_default();
        if let Some(a) = &active {
            out.sandbox_id = r.id.clone();
            out.sandbox_key = self.netns_path(&r.id).display().to_string();
            for p in &a.ports {
                let b = PortBinding {
                    host_ip: p.host_ip.map_or_else(
                        || {
                            if p.container_ip.is_ipv6() {
                                "::".into()
                            } else {
                                "0.0.0.0".into()
                            }
                        },
                        |a| a.to_string(),
                    ),
                    host_port: p.host_port.to_string(),
                };
                let list = out
                    .ports
                    .entry(format!("{}/{}", p.container_port, p.proto))
                    .or_insert_with(|| Some(Vec::new()));
                if let Some(l) = list {
                    if !l.contains(&b) {
                        l.push(b);
                    }
                }
            }
        }
        for e in &r.spec.network.expose {
            out.ports.entry(e.clone()).or_insert(None);
        }
        for (i, ep) in eps.iter().enumerate() {
            let Ok(n) = store.get(&ep.network_id) else {
                continue;
            };
            let want = r
                .spec
                .network
                .networks
                .iter()
                .find(|a| a.network == n.name || a.network == n.id);
            let mac = active
                .as_ref()
                .and_then(|a| a.macs.get(&n.id).cloned())
                .or_else(|| ep.mac.clone())
                .unwrap_or_default();
            // As Docker: a container that does not run shows the networks it
            // is on, but no address, gateway or MAC (berth keeps its address
            // for its next start; `network inspect` does not list it).
            let live = active.is_some();
            let ep = &Endpoint {
                ipv4: ep.ipv4.filter(|_| live),
                ipv6: ep.ipv6.filter(|_| live),
                ..ep.clone()
            };
            let mac = if live { mac } else { String::new() };
            let (gateway4, gateway6) = if live {
                (gateway_of(&n, false), gateway_of(&n, true))
            } else {
                (String::new(), String::new())
            };
            let e = EndpointSettings {
                ipam_config: want
                    .filter(|w| w.ipv4.is_some() || w.ipv6.is_some())
                    .map(|w| IpamConfig {
                        ipv4_address: w.ipv4.map(|a| a.to_string()),
                        ipv6_address: w.ipv6.map(|a| a.to_string()),
                    }),
                aliases: (!ep.aliases.is_empty()).then(|| ep.aliases.clone()),
                network_id: n.id.clone(),
                endpoint_id: if active.is_some() {
                    endpoint_id(&r.id, &n.id)
                } else {
                    String::new()
                },
                gateway: gateway4,
                ip_address: ep.ipv4.map(|a| a.to_string()).unwrap_or_default(),
                ip_prefix_len: ep.ipv4.map_or(0, |a| prefix_of(&n, IpAddr::V4(a))),
                ipv6_gateway: gateway6,
                global_ipv6_address: ep.ipv6.map(|a| a.to_string()).unwrap_or_default(),
                global_ipv6_prefix_len: ep.ipv6.map_or(0, |a| prefix_of(&n, IpAddr::V6(a))),
                mac_address: mac,
            };
            if i == 0 {
                out.bridge = n.bridge.clone();
                out.endpoint_id = e.endpoint_id.clone();
                out.gateway = e.gateway.clone();
                out.ip_address = e.ip_address.clone();
                out.ip_prefix_len = e.ip_prefix_len;
                out.ipv6_gateway = e.ipv6_gateway.clone();
                out.global_ipv6_address = e.global_ipv6_address.clone();
                out.global_ipv6_prefix_len = e.global_ipv6_prefix_len;
                out.mac_address = e.mac_address.clone();
            }
            out.networks.insert(n.name.clone(), e);
        }
        out
    }

    /// The published ports of a running container (`berth port`, `ps`).
    pub fn published(&self, id: &str) -> Vec<Published> {
        self.active_network(id).map(|a| a.ports).unwrap_or_default()
    }

    /// `berth network inspect`'s document.
    pub fn inspect_network(&self, name: &str) -> Result<NetworkInspect> {
        let n = self.network(name)?;
        let mut containers = BTreeMap::new();
        for (r, ep) in self.network_containers(&n)? {
            let Some(a) = self.active_network(&r.id) else {
                continue;
            };
            let with_prefix = |ip: Option<IpAddr>| {
                ip.map(|ip| format!("{ip}/{}", prefix_of(&n, ip)))
                    .unwrap_or_default()
            };
            containers.insert(
                r.id.clone(),
                NetworkContainer {
                    name: r.name.clone(),
                    endpoint_id: endpoint_id(&r.id, &n.id),
                    mac_address: a.macs.get(&n.id).cloned().unwrap_or_default(),
                    ipv4_address: with_prefix(ep.ipv4.map(IpAddr::V4)),
                    ipv6_address: with_prefix(ep.ipv6.map(IpAddr::V6)),
                },
            );
        }
        if model::predefined(&n.id, 0).is_some() {
            // host and none: the running containers in that mode.
            let host = n.name == "host";
            for r in self.records.all()? {
                let net = &r.spec.namespaces.net;
                let on = if host {
                    net.is_host()
                } else {
                    *net == crate::specgen::NamespaceMode::Private
                        && r.spec.network.networks.is_empty()
                };
                if on && matches!(r.state.status, Status::Running | Status::Restarting) {
                    containers.insert(
                        r.id.clone(),
                        NetworkContainer {
                            name: r.name.clone(),
                            ..NetworkContainer::default()
                        },
                    );
                }
            }
        }
        let mut options = n.options.clone();
        if !n.bridge.is_empty() {
            options.insert("com.docker.network.bridge.name".into(), n.bridge.clone());
        }
        if let Some(m) = n.mtu {
            options.insert("com.docker.network.driver.mtu".into(), m.to_string());
        }
        Ok(NetworkInspect {
            name: n.name.clone(),
            id: n.id.clone(),
            created: crate::logs::rfc3339_nano(n.created),
            scope: "local".into(),
            driver: n.driver.clone(),
            enable_ipv6: n.ipv6,
            ipam: NetworkIpam {
                driver: "default".into(),
                options: BTreeMap::new(),
                config: n
                    .subnets
                    .iter()
                    .map(|s| IpamPool {
                        subnet: s.subnet.to_string(),
                        gateway: s.gateway.map(|g| g.to_string()).unwrap_or_default(),
                        ip_range: s.ip_range.map(|r| r.to_string()).unwrap_or_default(),
                    })
                    .collect(),
            },
            internal: n.internal,
            attachable: false,
            ingress: false,
            containers,
            options,
            labels: n.labels.clone(),
            dns_enabled: n.dns,
        })
    }
}

const BRIDGE_NEEDS_ROOT: &str = "bridge networks need root; use --network none or host (rootless networking comes in a later release)";

/// Bridge networks are root's (rootless networking is a later issue).
fn needs_root(what: &str, msg: &str) -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(option(what, msg));
    }
    Ok(())
}

/// A host port asked for with `-p`: not one another container publishes
/// (`published`), and free on the host.
fn check_host_port<'a>(
    m: &PortMapping,
    published: impl IntoIterator<Item = &'a Published>,
) -> Result<()> {
    if let Some(p) = published
        .into_iter()
        .find(|p| p.claims(m.host_ip, m.host_port, m.proto))
    {
        return Err(Error::Conflict(format!(
            "host port {}/{} is already published ({}); choose another with -p",
            m.host_port,
            m.proto,
            p.display()
        )));
    }
    ports::check_free(m)?;
    Ok(())
}

/// Whether a link of that name exists in this namespace (asked over
/// netlink: /sys shows the namespace it was mounted in).
fn bridge_exists(name: &str) -> bool {
    link::Netlink::open()
        .and_then(|mut nl| nl.link_names())
        .is_ok_and(|names| names.iter().any(|n| n == name))
}

/// The nft elements of a network.
/// The host ports the monitor holds for `published` (one per host
/// address, port and protocol; SCTP has no socket to hold).
fn held_ports(published: &[Published]) -> Vec<berth_monitor_proto::config::HeldPort> {
    let mut out: Vec<berth_monitor_proto::config::HeldPort> = Vec::new();
    for p in published {
        let udp = match p.proto {
            Proto::Tcp => false,
            Proto::Udp => true,
            Proto::Sctp => continue,
        };
        let h = berth_monitor_proto::config::HeldPort {
            udp,
            addr: p.host_ip,
            port: p.host_port,
        };
        if !out.contains(&h) {
            out.push(h);
        }
    }
    out
}

/// The file (beside the networks' markers) naming the families whose
/// forwarding berth turned on.
const GUARD_FILE: &str = "forwarding-enabled-by-berth";

/// The families whose forwarding berth turned on (see [`nft::RULESET`]'s
/// guard).
#[derive(Clone, Copy, Debug, Default)]
struct Guard {
    v4: bool,
    v6: bool,
}

/// Removes `ports`' elements from berth's maps (a failure said once).
fn remove_published(id: &str, ports: &[Published]) {
    let rules: Vec<PortRule> = ports.iter().map(Published::rule).collect();
    if let Err(e) = nft::remove_ports(&rules) {
        warn!("container {id}: remove its published ports: {e}");
    }
}

fn rules(n: &Network, guard: Guard) -> nft::NetworkRules {
    nft::NetworkRules {
        bridge: n.bridge.clone(),
        subnets: n.subnets.iter().map(|s| s.subnet).collect(),
        internal: n.internal,
        guard4: guard.v4,
        guard6: guard.v6,
    }
}

/// eth0 before eth1 before eth10.
fn iface_order(name: &str) -> (usize, String) {
    (name.len(), name.to_string())
}

/// The host end's name: fixed by the container and the network (15 bytes).
pub fn veth_name(container_id: &str, network_id: &str) -> String {
    use sha2::Digest as _;
    let h = sha2::Sha256::digest(format!("{container_id}/{network_id}").as_bytes());
    let hex: String = h.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("veth{}", &hex[..11])
}

/// An endpoint's MAC address when none was asked for: from its address,
/// as Docker makes it (02:42 and the IPv4 address; a hash of the IPv6
/// one without it). An address keeps its MAC across restarts and
/// containers, so the host's neighbour entry for it is never stale: a
/// random MAC per start left the host sending to the old one until its
/// entry expired (seconds of silence after `berth restart`).
fn mac_for(ep: &Endpoint) -> [u8; 6] {
    if let Some(a) = ep.ipv4 {
        let o = a.octets();
        return [0x02, 0x42, o[0], o[1], o[2], o[3]];
    }
    use sha2::Digest as _;
    let h = sha2::Sha256::digest(format!("{:?}/{}", ep.ipv6, ep.network_id).as_bytes());
    [0x02, 0x43, h[0], h[1], h[2], h[3]]
}

fn veth(rec: &Record, n: &Network, ep: &Endpoint, gateways: Vec<IpAddr>) -> link::Veth {
    let mut addresses = Vec::new();
    for s in &n.subnets {
        let ip = match s.subnet {
            ipnet::IpNet::V4(_) => ep.ipv4.map(IpAddr::V4),
            ipnet::IpNet::V6(_) => ep.ipv6.map(IpAddr::V6),
        };
        if let Some(ip) = ip.filter(|ip| s.subnet.contains(ip)) {
            if let Ok(net) = ipnet::IpNet::new(ip, s.subnet.prefix_len()) {
                addresses.push(net);
            }
        }
    }
    link::Veth {
        host_name: veth_name(&rec.id, &n.id),
        bridge: n.bridge.clone(),
        container_name: ep.interface.clone(),
        mtu: n.mtu,
        mac: ep
            .mac
            .as_deref()
            .and_then(crate::specgen::parse_mac)
            .or_else(|| Some(mac_for(ep))),
        addresses,
        gateways,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `unmake_later` forks only with one thread: a second one is seen
    /// (the test harness runs tests on threads of its own, so this process
    /// never has just one here).
    #[test]
    fn single_threaded_sees_another_thread() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            let _ = rx.recv();
        });
        assert!(!single_threaded());
        drop(tx);
        t.join().unwrap();
    }

    #[test]
    fn veth_names_fit_an_interface_name_and_differ() {
        let a = veth_name(&"a".repeat(64), &"b".repeat(64));
        let b = veth_name(&"a".repeat(64), &"c".repeat(64));
        assert_eq!(a.len(), 15);
        assert!(a.starts_with("veth"));
        assert_ne!(a, b);
        assert_eq!(a, veth_name(&"a".repeat(64), &"b".repeat(64)));
    }

    #[test]
    fn published_ports_show_as_docker_shows_them() {
        let p = Published {
            host_ip: None,
            host_port: 8080,
            proto: Proto::Tcp,
            container_ip: "10.88.0.2".parse().unwrap(),
            container_port: 80,
        };
        assert_eq!(p.display(), "0.0.0.0:8080->80/tcp");
        let p6 = Published {
            host_ip: Some("::1".parse().unwrap()),
            container_ip: "fd00::2".parse().unwrap(),
            proto: Proto::Udp,
            ..p.clone()
        };
        assert_eq!(p6.display(), "[::1]:8080->80/udp");
        let l = Published {
            host_ip: Some("127.0.0.1".parse().unwrap()),
            ..p
        };
        assert_eq!(l.display(), "127.0.0.1:8080->80/tcp");
    }

    #[test]
    fn a_mac_follows_the_address_as_in_docker() {
        let ep = Endpoint {
            ipv4: Some("172.17.0.2".parse().unwrap()),
            ..Endpoint::default()
        };
        assert_eq!(mac_text(&mac_for(&ep)), "02:42:ac:11:00:02");
        let v6 = Endpoint {
            ipv6: Some("fd00::2".parse().unwrap()),
            network_id: "n".into(),
            ..Endpoint::default()
        };
        let m = mac_for(&v6);
        assert_eq!(m[0] & 1, 0, "unicast");
        assert_eq!(m, mac_for(&v6));
    }

    #[test]
    fn interfaces_sort_by_number() {
        let mut v = vec!["eth10", "eth2", "eth0", "eth1"];
        v.sort_by_key(|n| iface_order(n));
        assert_eq!(v, ["eth0", "eth1", "eth2", "eth10"]);
    }
}
