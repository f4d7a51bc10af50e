//! containers-registries.conf(5), the file Podman, Buildah and Skopeo
//! read: per-prefix locations, insecure (HTTP) registries, blocked
//! registries, mirrors, and short-name aliases.
//!
//! berth reads `$CONTAINERS_REGISTRIES_CONF`, else
//! `/etc/containers/registries.conf`, then the drop-ins in
//! `registries.conf.d/*.conf` next to it, in name order (later ones win).
//! `unqualified-search-registries` is deliberately not used: a name
//! without a registry is an alias if one is configured, else Docker Hub,
//! never a search that could pull a look-alike from another registry.

use crate::error::{Error, Result};
use crate::reference::Reference;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
struct File {
    #[serde(default)]
    registry: Vec<RegistryEntry>,
    #[serde(default)]
    aliases: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RegistryEntry {
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub location: String,
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub blocked: bool,
    #[serde(default)]
    pub mirror: Vec<Mirror>,
}

#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct Mirror {
    pub location: String,
    #[serde(default)]
    pub insecure: bool,
}

/// The merged configuration.
#[derive(Clone, Debug, Default)]
pub struct Registries {
    entries: Vec<RegistryEntry>,
    aliases: BTreeMap<String, (String, PathBuf)>,
}

/// Where to fetch an image from: a registry host, the repository there,
/// and whether plain HTTP is allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub reference: Reference,
    pub insecure: bool,
    pub mirror: bool,
}

impl Registries {
    /// Reads the configuration files (none is fine).
    pub fn load() -> Result<Registries> {
        let main = std::env::var_os("CONTAINERS_REGISTRIES_CONF")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/etc/containers/registries.conf"));
        let mut files = vec![main.clone()];
        if let Some(dir) = main.parent().map(|d| d.join("registries.conf.d")) {
            if let Ok(rd) = std::fs::read_dir(&dir) {
                let mut extra: Vec<PathBuf> = rd
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "conf"))
                    .collect();
                extra.sort();
                files.extend(extra);
            }
        }
        let mut r = Registries::default();
        for f in files {
            match std::fs::read_to_string(&f) {
                Ok(text) => r.add(&text, &f)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::Io {
                        op: format!("read {}", f.display()),
                        cause: e,
                    })
                }
            }
        }
        Ok(r)
    }

    /// Adds one file's contents (later entries for a prefix replace earlier ones).
    pub fn add(&mut self, text: &str, path: &Path) -> Result<()> {
        let f: File = toml::from_str(text).map_err(|e| {
            Error::Usage(format!(
                "{}: not a valid registries.conf: {e}",
                path.display()
            ))
        })?;
        for mut e in f.registry {
            if e.prefix.is_empty() {
                e.prefix = e.location.clone();
            }
            if e.prefix.is_empty() {
                return Err(Error::Usage(format!(
                    "{}: a [[registry]] needs a prefix or a location",
                    path.display()
                )));
            }
            if e.location.is_empty() {
                e.location = e.prefix.clone();
            }
            self.entries.retain(|x| x.prefix != e.prefix);
            self.entries.push(e);
        }
        for (k, v) in f.aliases {
            self.aliases.insert(k, (v, path.to_path_buf()));
        }
        Ok(())
    }

    /// A short name (no registry written) with a configured alias: the
    /// full name, with the input's tag or digest, and the file it came from.
    pub fn alias(&self, input: &str) -> Option<(String, &Path)> {
        let (name, rest) = split_name(input);
        let first = name.split('/').next().unwrap_or("");
        if name.contains('/') && (first.contains(['.', ':']) || first == "localhost") {
            return None;
        }
        let (target, file) = self.aliases.get(name)?;
        Some((format!("{target}{rest}"), file))
    }

    /// The entry whose prefix matches `name` (`registry/repository`)
    /// longest, at a path boundary.
    fn entry(&self, name: &str) -> Option<&RegistryEntry> {
        self.entries
            .iter()
            .filter(|e| {
                let p = e.prefix.trim_end_matches('/');
                name == p || name.starts_with(&format!("{p}/"))
            })
            .max_by_key(|e| e.prefix.len())
    }

    /// Where to pull `r` from, in order: the mirrors, then the location.
    pub fn endpoints(&self, r: &Reference) -> Result<Vec<Endpoint>> {
        let name = r.name();
        let Some(e) = self.entry(&name) else {
            return Ok(vec![Endpoint {
                reference: r.clone(),
                insecure: false,
                mirror: false,
            }]);
        };
        if e.blocked {
            return Err(Error::Usage(format!(
                "{r}: the registry is blocked in registries.conf (prefix {:?})",
                e.prefix
            )));
        }
        let rest = &name[e.prefix.trim_end_matches('/').len()..];
        let rewrite = |location: &str| -> Result<Reference> {
            let mut s = format!("{}{rest}", location.trim_end_matches('/'));
            if let Some(t) = &r.tag {
                s.push(':');
                s.push_str(t);
            }
            if let Some(d) = &r.digest {
                s.push('@');
                s.push_str(&d.to_string());
            }
            Reference::parse(&s).map_err(|err| {
                Error::Usage(format!("registries.conf: {location:?} for {r}: {err}"))
            })
        };
        let mut out = Vec::new();
        for m in &e.mirror {
            out.push(Endpoint {
                reference: rewrite(&m.location)?,
                insecure: m.insecure,
                mirror: true,
            });
        }
        out.push(Endpoint {
            reference: rewrite(&e.location)?,
            insecure: e.insecure,
            mirror: false,
        });
        Ok(out)
    }
}

/// `name` and the `:tag`/`@digest` part of an image reference as written.
fn split_name(input: &str) -> (&str, &str) {
    let at = input.find('@').unwrap_or(input.len());
    let slash = input[..at].rfind('/').map_or(0, |i| i + 1);
    let colon = input[slash..at].find(':').map(|i| slash + i);
    let cut = colon.unwrap_or(at);
    (&input[..cut], &input[cut..])
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = r#"
unqualified-search-registries = ["quay.io", "docker.io"]
[[registry]]
prefix = "example.com/team"
location = "internal.example.com:5000/mirror/team"
insecure = true
[[registry.mirror]]
location = "mirror.local:5000/team"
[[registry]]
location = "blocked.example.com"
blocked = true
[aliases]
"fedora" = "registry.fedoraproject.org/fedora"
"#;

    fn regs() -> Registries {
        let mut r = Registries::default();
        r.add(CONF, Path::new("test.conf")).unwrap();
        r
    }

    #[test]
    fn prefixes_mirrors_and_blocks() {
        let r = regs();
        let e = r
            .endpoints(&Reference::parse("example.com/team/app:1").unwrap())
            .unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].reference.to_string(), "mirror.local:5000/team/app:1");
        assert!(e[0].mirror);
        assert_eq!(
            e[1].reference.to_string(),
            "internal.example.com:5000/mirror/team/app:1"
        );
        assert!(e[1].insecure);
        // Not at a path boundary: no match.
        let e = r
            .endpoints(&Reference::parse("example.com/teams/app").unwrap())
            .unwrap();
        assert_eq!(e[0].reference.to_string(), "example.com/teams/app:latest");
        assert!(r
            .endpoints(&Reference::parse("blocked.example.com/x").unwrap())
            .is_err());
    }

    #[test]
    fn aliases_apply_to_short_names_only() {
        let r = regs();
        assert_eq!(
            r.alias("fedora:40").unwrap().0,
            "registry.fedoraproject.org/fedora:40"
        );
        assert_eq!(
            r.alias("fedora").unwrap().0,
            "registry.fedoraproject.org/fedora"
        );
        assert!(r.alias("quay.io/fedora").is_none());
        assert!(
            r.alias("busybox").is_none(),
            "no alias: Docker Hub, no search"
        );
        assert!(Registries::default()
            .add("[[registry]]\nblocked = true\n", Path::new("x"))
            .is_err());
        assert!(Registries::default()
            .add("not toml [", Path::new("x"))
            .is_err());
    }
}
