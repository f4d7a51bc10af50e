//! `commit`: a container's changes (its overlay upper directory) as a new
//! layer on top of its image's, with a config made as `docker commit`
//! makes it; and `export`: a container's whole filesystem as a tar.
//!
//! Both read a tree the container can change: through
//! [`berth_image::layer::write_tar`], which walks by fd and never follows
//! a link. A running container is paused during a commit's walk (unless
//! asked not to) and thawed after, whatever happened.

use crate::containers::Engine;
use crate::error::{Error, Result};
use crate::images::Digest;
use crate::records::{Record, Status};
pub use berth_image::commit::ImageFormat;
use berth_image::commit::{self as ic, Change};
pub use berth_image::layer::LayerCompression;
use berth_image::layer::{self, TarOptions};
use berth_sys::fs as sfs;
use serde_json::{json, Map, Value};
use std::io::Write;
use std::os::fd::AsFd;

/// `berth commit`'s options.
#[derive(Clone, Debug, Default)]
pub struct CommitOptions {
    /// The new image's name (NAME[:TAG]); none: a dangling image.
    pub name: Option<String>,
    pub author: Option<String>,
    /// The history entry's comment.
    pub message: Option<String>,
    /// Dockerfile instructions applied to the config (`--change`).
    pub changes: Vec<String>,
    /// Pause a running container during the walk (Docker's default).
    pub pause: bool,
    pub format: ImageFormat,
    pub compression: LayerCompression,
}

/// What `commit` made.
#[derive(Clone, Debug)]
pub struct Committed {
    pub id: Digest,
    pub name: Option<String>,
}

fn io(op: impl Into<String>) -> impl Fn(std::io::Error) -> Error {
    let op = op.into();
    move |cause| Error::Io {
        op: op.clone(),
        cause,
    }
}

/// `list` with `over`'s KEY=VALUE entries replacing those of the same key.
fn merge_env(list: &[String], over: &[String]) -> Vec<String> {
    let key = |kv: &str| kv.split_once('=').map_or(kv, |x| x.0).to_string();
    let mut out: Vec<String> = list.to_vec();
    for kv in over {
        match out.iter_mut().find(|e| key(e) == key(kv)) {
            Some(e) => *e = kv.clone(),
            None => out.push(kv.clone()),
        }
    }
    out
}

impl Engine {
    /// `commit`: the container's changes as a new image (see the module).
    pub fn commit(&self, what: &str, opts: &CommitOptions) -> Result<Committed> {
        // Everything the user typed is checked before anything happens.
        let changes = ic::parse_changes(&opts.changes)?;
        if let Some(n) = &opts.name {
            let r = berth_image::Reference::parse(n)?;
            if r.digest.is_some() {
                return Err(crate::error::option(
                    "commit",
                    format!("{n}: a new image cannot be named by a digest; give NAME[:TAG]"),
                ));
            }
        }
        let rec = self.get(what)?;
        let pause = opts.pause && rec.state.status == Status::Running && !rec.state.paused;
        if pause {
            self.pause(&rec.id)?;
        }
        let result = self.commit_locked(what, &rec.id, &changes, opts);
        if !pause {
            return result;
        }
        // Thawed whatever happened; a thaw that fails is said, with what
        // was committed.
        match (result, self.unpause(&rec.id)) {
            (r, Ok(_)) => r,
            (Ok(c), Err(e)) => Err(Error::Conflict(format!(
                "container {}: committed as {}, but the container could not be thawed ({e}); run `berth unpause {}`",
                rec.name, c.id, rec.name
            ))),
            (Err(e), Err(u)) => Err(Error::Conflict(format!(
                "container {}: {e}; and the container could not be thawed ({u}); run `berth unpause {}`",
                rec.name, rec.name
            ))),
        }
    }

    /// The walk and the image, under the container's lock (no rm, start
    /// or cleanup meanwhile; taken after the pause, which takes it too).
    fn commit_locked(
        &self,
        what: &str,
        id: &str,
        changes: &[Change],
        opts: &CommitOptions,
    ) -> Result<Committed> {
        let _lock = self.lock(id)?;
        let rec = self
            .records
            .get(id)?
            .ok_or_else(|| Error::NoSuchContainer(what.to_string()))?;
        let image_id = Digest::parse(&rec.image_id)?;
        let base = ic::image_config(&self.images, &image_id)?;
        let config = self.commit_config(&rec, base, changes, opts)?;
        let upper = self.paths.container(&rec.id).join("upper");
        let upper_fd = match sfs::open(
            &upper,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        ) {
            Ok(fd) => fd,
            // Never mounted: no changes, an empty layer (as Docker makes).
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let empty = self
                    .images
                    .tmp_dir()
                    .join(format!("commit-empty-{}", rec.id));
                let _ = std::fs::create_dir_all(&empty);
                let fd = sfs::open(&empty, libc::O_RDONLY | libc::O_DIRECTORY, 0)
                    .map_err(io(format!("open {}", empty.display())))?;
                let _ = std::fs::remove_dir(&empty);
                fd
            }
            Err(e) => return Err(io(format!("open {}", upper.display()))(e)),
        };
        let parent: Vec<Digest> = config["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str().and_then(|s| Digest::parse(s).ok()))
                    .collect()
            })
            .unwrap_or_default();
        let mut store = crate::containers::open_store(&self.paths.root)?;
        let _pull = store.pull_lock()?;
        let (new, chain) = layer::store_new_layer(
            &store,
            upper_fd.as_fd(),
            &TarOptions {
                overlay: true,
                clamp_mtime: None,
                id_maps: id_maps(&rec),
            },
            opts.compression,
            &parent,
        )
        .map_err(|e| commit_err(&rec, e))?;
        let id = ic::record_image(
            &mut store,
            Some(&image_id),
            config,
            &new,
            &chain,
            opts.format,
            opts.name.as_deref(),
        )?;
        let name = opts
            .name
            .as_deref()
            .and_then(|n| berth_image::Reference::parse(n).ok())
            .map(|r| r.to_string());
        self.container_event(&rec, "commit", &[("imageID", id.to_string())]);
        Ok(Committed { id, name })
    }

    /// The new image's config: the image's, with what the container was
    /// given over it (as `docker commit` takes the container's config),
    /// then the changes; a history entry; and for the docker format the
    /// `container` and `container_config` fields Docker writes.
    fn commit_config(
        &self,
        rec: &Record,
        mut doc: Value,
        changes: &[Change],
        opts: &CommitOptions,
    ) -> Result<Value> {
        let p = &rec.spec.process;
        let mut c: Map<String, Value> = doc["config"].as_object().cloned().unwrap_or_default();
        let strs = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let env = merge_env(&strs(c.get("Env")), &p.env);
        if !env.is_empty() {
            c.insert("Env".into(), json!(env));
        }
        if !p.args.is_empty() {
            c.insert("Cmd".into(), json!(p.args));
        }
        if let Some(ep) = &p.entrypoint {
            if ep.is_empty() {
                c.insert("Entrypoint".into(), Value::Null);
            } else {
                c.insert("Entrypoint".into(), json!(ep));
            }
            if p.args.is_empty() {
                // `--entrypoint` without a command runs no image CMD.
                c.insert("Cmd".into(), Value::Null);
            }
        }
        if let Some(w) = &p.workdir {
            c.insert("WorkingDir".into(), json!(w));
        }
        if let Some(u) = &p.user {
            c.insert("User".into(), json!(u));
        }
        if let Some(s) = &p.stop_signal {
            c.insert("StopSignal".into(), json!(s));
        }
        if !rec.spec.metadata.labels.is_empty() {
            let mut l = c
                .get("Labels")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            for (k, v) in &rec.spec.metadata.labels {
                l.insert(k.clone(), json!(v));
            }
            c.insert("Labels".into(), Value::Object(l));
        }
        let net = &rec.spec.network;
        let exposed: Vec<String> = net
            .expose
            .iter()
            .cloned()
            .chain(
                net.ports
                    .iter()
                    .map(|p| format!("{}/{}", p.container_port, p.proto)),
            )
            .collect();
        if !exposed.is_empty() {
            let mut m = c
                .get("ExposedPorts")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            for e in exposed {
                m.insert(e, json!({}));
            }
            c.insert("ExposedPorts".into(), Value::Object(m));
        }
        // Anonymous volumes (`-v /data`) are volumes of the new image, as
        // Docker records them in the container's config.
        let anon: Vec<&str> = rec
            .spec
            .storage
            .mounts
            .iter()
            .filter(|m| m.kind == crate::specgen::MountType::Volume && m.source.is_empty())
            .map(|m| m.destination.as_str())
            .collect();
        if !anon.is_empty() {
            let mut m = c
                .get("Volumes")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            for d in anon {
                m.insert(d.to_string(), json!({}));
            }
            c.insert("Volumes".into(), Value::Object(m));
        }
        let container_config = Value::Object(c.clone());
        ic::apply_changes(&mut c, changes);
        doc["config"] = Value::Object(c);
        let now = berth_image::archive::rfc3339_now();
        doc["created"] = json!(now);
        match &opts.author {
            Some(a) => doc["author"] = json!(a),
            None => {
                if let Some(o) = doc.as_object_mut() {
                    o.remove("author");
                }
            }
        }
        let created_by = self.command(rec).map(|c| c.join(" ")).unwrap_or_default();
        let mut h = json!({"created": now, "created_by": created_by});
        if let Some(a) = &opts.author {
            h["author"] = json!(a);
        }
        if let Some(m) = &opts.message {
            h["comment"] = json!(m);
        }
        match doc["history"].as_array_mut() {
            Some(a) => a.push(h),
            None => doc["history"] = json!([h]),
        }
        if let Some(o) = doc.as_object_mut() {
            o.remove("container");
            o.remove("container_config");
        }
        if opts.format == ImageFormat::Docker {
            doc["container"] = json!(rec.id);
            let mut cc = container_config;
            cc["Image"] = json!(rec.image_id);
            cc["Hostname"] = json!(rec.spec.network.hostname.clone().unwrap_or_else(|| rec
                .id
                .chars()
                .take(12)
                .collect()));
            doc["container_config"] = cc;
        }
        Ok(doc)
    }

    /// `export`: the container's whole filesystem (its image's layers with
    /// its changes: the mounted overlay, mounted for the export when it is
    /// not) as a tar stream on `out`. Mount points in it (volumes, /proc
    /// of a running container) are written, their contents are not.
    pub fn export(&self, what: &str, out: &mut dyn Write) -> Result<()> {
        let found = self.get(what)?;
        let _lock = self.lock(&found.id)?;
        let rec = self
            .records
            .get(&found.id)?
            .ok_or_else(|| Error::NoSuchContainer(what.to_string()))?;
        let target = self.paths.rootfs(&rec.id);
        let mounted = crate::rootfs::is_mounted(&target);
        if !mounted {
            self.mount_rootfs(&rec)?;
        }
        let result = (|| {
            let root = sfs::open(
                &target,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )
            .map_err(io(format!("open {}", target.display())))?;
            let opts = TarOptions {
                id_maps: id_maps(&rec),
                ..Default::default()
            };
            layer::write_tar(root.as_fd(), &opts, out).map_err(|e| commit_err(&rec, e))?;
            Ok(())
        })();
        let still_running = matches!(
            self.records
                .get(&rec.id)
                .ok()
                .flatten()
                .map(|r| r.state.status),
            Some(Status::Running | Status::Restarting)
        );
        if !mounted && !still_running {
            let _ = self.host.unmount(&target, None);
        }
        result
    }
}

/// A container with a user namespace wrote its files with host ids: they
/// go in a tar as the container saw them.
fn id_maps(rec: &Record) -> Option<layer::IdMaps> {
    rec.spec.namespaces.user_maps.as_ref().map(|u| {
        let m = |v: &[crate::userns::IdMap]| {
            v.iter()
                .map(|r| (r.container_id, r.host_id, r.size))
                .collect()
        };
        layer::IdMaps {
            uids: m(&u.uids),
            gids: m(&u.gids),
        }
    })
}

fn commit_err(rec: &Record, e: berth_image::Error) -> Error {
    match e {
        berth_image::Error::Io { op, cause } => Error::Io {
            op: format!("container {}: {op}", rec.name),
            cause,
        },
        e => Error::Store(e),
    }
}
