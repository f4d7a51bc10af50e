//! The rows that `--format` templates see in the list commands: Docker's
//! field names (the Go struct fields of its formatters) and, next to each
//! view, its column headers for `table ...`. Texts, as Docker's are: a
//! template prints them as the table would.

use serde::Serialize;

/// A container in `ps`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PsRow {
    /// 12 characters unless `--no-trunc`.
    #[serde(rename = "ID")]
    pub id: String,
    pub image: String,
    /// Quoted, shortened as the table shows it.
    pub command: String,
    /// `2024-01-02 15:04:05 +0000 UTC`.
    pub created_at: String,
    /// `5 minutes ago`.
    pub running_for: String,
    pub ports: String,
    /// `running`, `exited`, ...
    pub state: String,
    /// `Up 5 minutes`, `Exited (0) 2 seconds ago`.
    pub status: String,
    pub size: String,
    pub names: String,
    /// `k=v,k2=v2` (`.Label "k"` reads one).
    pub labels: String,
    /// Volume names and bind sources, comma-separated.
    pub mounts: String,
    pub networks: String,
}

impl PsRow {
    pub const HEADERS: &'static [(&'static str, &'static str)] = &[
        ("ID", "CONTAINER ID"),
        ("Image", "IMAGE"),
        ("Command", "COMMAND"),
        ("CreatedAt", "CREATED AT"),
        ("RunningFor", "CREATED"),
        ("Ports", "PORTS"),
        ("State", "STATE"),
        ("Status", "STATUS"),
        ("Size", "SIZE"),
        ("Names", "NAMES"),
        ("Labels", "LABELS"),
        ("Mounts", "MOUNTS"),
        ("Networks", "NETWORKS"),
    ];
}

/// An image name in `images` (an image with two names is two rows).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageRow {
    #[serde(rename = "ID")]
    pub id: String,
    pub repository: String,
    pub tag: String,
    pub digest: String,
    /// `3 days ago`.
    pub created_since: String,
    pub created_at: String,
    /// `5.29MB`.
    pub size: String,
}

impl ImageRow {
    pub const HEADERS: &'static [(&'static str, &'static str)] = &[
        ("ID", "IMAGE ID"),
        ("Repository", "REPOSITORY"),
        ("Tag", "TAG"),
        ("Digest", "DIGEST"),
        ("CreatedSince", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("Size", "SIZE"),
    ];
}

/// A container's sample in `stats`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StatsRow {
    /// The container as it was named on the command line (its short id
    /// when none was named).
    #[serde(rename = "Container")]
    pub container: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "ID")]
    pub id: String,
    /// `1.25%`.
    #[serde(rename = "CPUPerc")]
    pub cpu_perc: String,
    /// `1.2MB / 256MB`.
    #[serde(rename = "MemUsage")]
    pub mem_usage: String,
    #[serde(rename = "MemPerc")]
    pub mem_perc: String,
    /// `--`: not measured.
    #[serde(rename = "NetIO")]
    pub net_io: String,
    #[serde(rename = "BlockIO")]
    pub block_io: String,
    #[serde(rename = "PIDs")]
    pub pids: String,
}

impl StatsRow {
    pub const HEADERS: &'static [(&'static str, &'static str)] = &[
        ("Container", "CONTAINER"),
        ("Name", "NAME"),
        ("ID", "CONTAINER ID"),
        ("CPUPerc", "CPU %"),
        ("MemUsage", "MEM USAGE / LIMIT"),
        ("MemPerc", "MEM %"),
        ("NetIO", "NET I/O"),
        ("BlockIO", "BLOCK I/O"),
        ("PIDs", "PIDS"),
    ];
}

/// A volume in `volume ls`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeRow {
    pub name: String,
    pub driver: String,
    pub scope: String,
    pub mountpoint: String,
    /// `k=v,k2=v2` (`.Label "k"` reads one).
    pub labels: String,
}

impl VolumeRow {
    pub const HEADERS: &'static [(&'static str, &'static str)] = &[
        ("Name", "VOLUME NAME"),
        ("Driver", "DRIVER"),
        ("Scope", "SCOPE"),
        ("Mountpoint", "MOUNTPOINT"),
        ("Labels", "LABELS"),
    ];
}

/// Labels as the list views print them: `k=v,k2=v2`, sorted by key.
pub fn labels_text<'a>(labels: impl IntoIterator<Item = (&'a String, &'a String)>) -> String {
    let mut l: Vec<String> = labels
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    l.sort();
    l.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field a view has is in its headers, under the name the
    /// template sees.
    fn same_keys<T: Serialize + Default>(headers: &[(&str, &str)]) {
        let v = serde_json::to_value(T::default()).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut h: Vec<&str> = headers.iter().map(|(k, _)| *k).collect();
        keys.sort();
        h.sort();
        assert_eq!(keys, h);
    }

    #[test]
    fn views_have_dockers_field_names_and_headers() {
        same_keys::<PsRow>(PsRow::HEADERS);
        same_keys::<ImageRow>(ImageRow::HEADERS);
        same_keys::<StatsRow>(StatsRow::HEADERS);
        same_keys::<VolumeRow>(VolumeRow::HEADERS);
        let l: std::collections::BTreeMap<String, String> =
            [("b".into(), "2".into()), ("a".into(), "1".into())].into();
        assert_eq!(labels_text(&l), "a=1,b=2");
    }
}
