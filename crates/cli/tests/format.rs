//! `--format` with Go templates (issue 21, item 7): ps, inspect, images,
//! stats, volume ls and inspect, end to end through the `berth` binary,
//! as root.

mod common;
use common::*;

/// Imports a busybox image as `bb:latest` into `env`'s store.
fn image(env: &Env) -> &'static str {
    import_image(
        env,
        busybox_rootfs(&["sh", "sleep", "true"]).end(),
        "bb:latest",
    )
}

/// A running container `fmt1` with a label and a volume; its id.
fn running(env: &Env) -> String {
    let img = image(env);
    let id = env
        .berth(&[
            "run",
            "-d",
            "--name",
            "fmt1",
            "-l",
            "k=v",
            "-l",
            "a.b=c",
            "-v",
            "vol1:/data",
            img,
            "sleep",
            "300",
        ])
        .ok()
        .stdout;
    id.trim().to_string()
}

fn failed(o: Out, want: &str) {
    assert_ne!(o.code, 0, "succeeded: {}", o.stdout);
    assert!(o.stderr.contains(want), "no {want:?} in: {}", o.stderr);
}

#[test]
fn ps_format_templates_tables_and_json() {
    let env = Env::new();
    let id = running(&env);
    let out = env
        .berth(&["ps", "--format", "{{.Names}}\\t{{.Status}}"])
        .ok()
        .stdout;
    assert!(out.starts_with("fmt1\tUp "), "{out:?}");
    assert_eq!(out.lines().count(), 1, "{out:?}");
    let out = env
        .berth(&[
            "ps",
            "--format",
            "{{.Label \"k\"}}|{{.Labels}}|{{.Mounts}}|{{.State}}|{{.Image}}",
        ])
        .ok()
        .stdout;
    assert_eq!(out, "v|a.b=c,k=v|vol1|running|bb:latest\n");
    let out = env
        .berth(&[
            "ps",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.Names | upper}} {{len .ID}}",
        ])
        .ok()
        .stdout;
    assert_eq!(out, format!("{id} FMT1 64\n"));
    // table: Docker's headers, aligned columns.
    let out = env
        .berth(&["ps", "--format", "table {{.ID}}\\t{{.Image}}\\t{{.Names}}"])
        .ok()
        .stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out:?}");
    assert_eq!(lines[0], "CONTAINER ID   IMAGE       NAMES");
    assert_eq!(lines[1], format!("{}   bb:latest   fmt1", &id[..12]));
    assert!(env
        .berth(&["ps", "--format", "table"])
        .ok()
        .stdout
        .starts_with("CONTAINER ID"));
    // json as before: one array of objects.
    let v: serde_json::Value =
        serde_json::from_str(&env.berth(&["ps", "--format", "json"]).ok().stdout).unwrap();
    assert_eq!(v[0]["Id"], id.as_str());
    // Errors: a missing field names it; a bad template names the column.
    failed(
        env.berth(&["ps", "--format", "{{.Nope}}"]),
        "no field \"Nope\"",
    );
    let o = env.berth(&["ps", "--format", "ab{{.Names"]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("column 3"), "{}", o.stderr);
    // stats: the same container's sample through a template.
    let out = env
        .berth(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}} {{.PIDs}} {{.ID}} {{.Container}}",
            "fmt1",
        ])
        .ok()
        .stdout;
    assert_eq!(out, format!("fmt1 1 {} fmt1\n", &id[..12]));
    let out = env
        .berth(&[
            "stats",
            "--no-stream",
            "--format",
            "table {{.Name}}\\t{{.CPUPerc}}\\t{{.MemUsage}}",
        ])
        .ok()
        .stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out:?}");
    assert!(
        lines[0].starts_with("NAME      CPU %     MEM USAGE / LIMIT"),
        "{out:?}"
    );
    assert!(
        lines[1].starts_with("fmt1      ") && lines[1].contains('%'),
        "{out:?}"
    );
}

#[test]
fn inspect_format_reads_the_inspect_json() {
    let env = Env::new();
    let id = running(&env);
    let full: serde_json::Value =
        serde_json::from_str(&env.berth(&["inspect", "fmt1"]).ok().stdout).unwrap();
    let pid = env
        .berth(&["inspect", "-f", "{{.State.Pid}}", "fmt1"])
        .ok()
        .stdout;
    assert_eq!(pid.trim(), full[0]["State"]["Pid"].to_string());
    assert_ne!(pid.trim(), "0");
    let q = |t: &str| env.berth(&["inspect", "--format", t, "fmt1"]).ok().stdout;
    assert_eq!(q("{{index .Config.Labels \"a.b\"}}"), "c\n");
    assert_eq!(
        q("{{range .Mounts}}{{.Name}}:{{.Destination}} {{end}}"),
        "vol1:/data \n"
    );
    assert_eq!(q("{{if .State.Running}}up{{else}}down{{end}}"), "up\n");
    assert_eq!(
        q("{{json .Config.Labels}}"),
        "{\"a.b\":\"c\",\"k\":\"v\"}\n"
    );
    assert_eq!(
        q("{{.Name | upper}} {{join .Config.Cmd \" \"}}"),
        "/FMT1 sleep 300\n"
    );
    assert_eq!(
        q("{{$id := .Id}}{{truncate $id 12}}"),
        format!("{}\n", &id[..12])
    );
    let two = env
        .berth(&["inspect", "-f", "{{.Name}}", "fmt1", &id])
        .ok()
        .stdout;
    assert_eq!(two, "/fmt1\n/fmt1\n");
    failed(
        env.berth(&["inspect", "-f", "{{.State.Nope}}", "fmt1"]),
        ".State: there is no field \"Nope\"",
    );
    // The whole JSON without -f, or with -f json.
    let j: serde_json::Value =
        serde_json::from_str(&env.berth(&["inspect", "-f", "json", "fmt1"]).ok().stdout).unwrap();
    assert_eq!(j[0]["Id"], id.as_str());
}

#[test]
fn images_format() {
    let env = Env::new();
    image(&env);
    let out = env
        .berth(&[
            "images",
            "--format",
            "{{.Repository}}:{{.Tag}} {{len .ID}} {{.Size}}",
        ])
        .ok()
        .stdout;
    // Names as the store keeps them (and berth's table shows them).
    assert!(
        out.starts_with("docker.io/library/bb:latest 12 "),
        "{out:?}"
    );
    assert!(
        out.trim_end().ends_with("MB") || out.trim_end().ends_with("kB"),
        "{out:?}"
    );
    let out = env
        .berth(&[
            "images",
            "--format",
            "table {{.Repository}}\\t{{.Tag}}\\t{{.CreatedSince}}",
        ])
        .ok()
        .stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        format!("{:23}{:10}CREATED", "REPOSITORY", "TAG"),
        "{out:?}"
    );
    assert!(
        lines[1].starts_with("docker.io/library/bb   latest    ") && lines[1].ends_with(" ago"),
        "{out:?}"
    );
    assert_eq!(env.images_json().as_array().map(Vec::len), Some(1));
    let os = env
        .berth(&["image", "inspect", "-f", "{{.Os}}/{{len .RepoTags}}", "bb"])
        .ok()
        .stdout;
    assert_eq!(os, "linux/1\n");
}

#[test]
fn volume_format() {
    let env = Env::new();
    env.berth(&["volume", "create", "-l", "x=1", "v1"]).ok();
    env.berth(&["volume", "create", "v2"]).ok();
    let out = env
        .berth(&[
            "volume",
            "ls",
            "--format",
            "{{.Name}} {{.Driver}} {{.Scope}} [{{.Label \"x\"}}]",
        ])
        .ok()
        .stdout;
    assert_eq!(out, "v1 local local [1]\nv2 local local []\n");
    let out = env
        .berth(&["volume", "ls", "--format", "table {{.Name}}\\t{{.Labels}}"])
        .ok()
        .stdout;
    assert_eq!(
        out,
        "VOLUME NAME   LABELS\nv1            x=1\nv2            \n"
    );
    let mp = env
        .berth(&["volume", "inspect", "-f", "{{.Mountpoint}}", "v1"])
        .ok()
        .stdout;
    let want = env
        .berth(&[
            "volume",
            "ls",
            "--format",
            "{{if eq .Name \"v1\"}}{{.Mountpoint}}{{end}}",
        ])
        .ok()
        .stdout;
    assert_eq!(format!("{}\n", want.trim()), mp);
    assert!(mp.trim().ends_with("/_data") || mp.contains("v1"), "{mp}");
}
