use super::*;
use berth_engine::specgen::{MountType, NamespaceMode, RestartPolicy};

fn plan_of(y: &str) -> Result<Plan> {
    let m = parse("t.yaml", y)?;
    plan(
        &m,
        &Options {
            network: "net1".into(),
        },
    )
}

const DEPLOY: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {GREETING: hello, app.conf: "x=1\n"}
---
apiVersion: v1
kind: Secret
metadata: {name: sec}
data: {PASSWORD: czNjcjN0}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: main
        image: busybox:1.36
        command: [sh, -c]
        args: ["echo $(GREETING) $(POD) $$(NOT)"]
        env:
        - {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: PW, valueFrom: {secretKeyRef: {name: sec, key: PASSWORD}}}
        - {name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
        envFrom: [{configMapRef: {name: cfg}}]
        resources: {limits: {memory: 64Mi, cpu: 500m}, requests: {cpu: 250m}}
        volumeMounts: [{name: conf, mountPath: /etc/app}]
        readinessProbe: {exec: {command: ["true"]}, periodSeconds: 2}
      volumes:
      - name: conf
        configMap: {name: cfg, defaultMode: 0400, items: [{key: app.conf, path: sub/app.conf, mode: 0640}]}
---
apiVersion: v1
kind: Service
metadata: {name: websvc}
spec: {selector: {app: web}, ports: [{port: 80}]}
"#;

#[test]
fn deployment_translates() {
    let p = plan_of(DEPLOY).unwrap();
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(p.workloads.len(), 1);
    let w = &p.workloads[0];
    assert_eq!((w.kind, w.replicas), (Kind::Deployment, 3));
    assert!(w.pod_prefix().starts_with("web-"));
    let pod = w.pod("web-abc-12345", 0).unwrap();
    let c = &pod.containers[0];
    assert_eq!(c.name, "web-abc-12345-main");
    assert_eq!(c.spec.process.args, ["echo hello web-abc-12345 $(NOT)"]);
    assert!(c.spec.process.env.contains(&"PW=s3cr3t".to_string()));
    assert!(c.spec.process.env.contains(&"MEM=64".to_string()));
    assert_eq!(c.spec.resources.memory, Some(64 << 20));
    assert_eq!(c.spec.resources.cpus, Some(0.5));
    assert_eq!(c.spec.resources.cpu_shares, Some(256));
    assert_eq!(pod.volumes[0].files[0].path, "sub/app.conf");
    assert_eq!(pod.volumes[0].files[0].mode, 0o640);
    assert!(c.spec.storage.mounts[0].readonly);
    assert_eq!(c.probes[0].kind, ProbeKind::Readiness);
    // The monitor runs it: the engine's health spec holds it.
    let hp = &c.spec.health.probes[0];
    assert_eq!((hp.kind.as_str(), hp.period_ms), ("readiness", 2000));
    assert_eq!(
        hp.handler,
        berth_engine::health::Handler::Exec {
            command: vec!["true".into()]
        }
    );
    assert_eq!(pod.spec.network.networks[0].aliases, ["websvc"]);
    assert_eq!(c.pull, Pull::IfNotPresent);
}

#[test]
fn hash_follows_the_template() {
    let a = plan_of(DEPLOY).unwrap().workloads[0].template_hash.clone();
    let b = plan_of(&DEPLOY.replace("hello", "bye")).unwrap().workloads[0]
        .template_hash
        .clone();
    assert_ne!(a, b);
    assert_eq!(a, plan_of(DEPLOY).unwrap().workloads[0].template_hash);
    assert!(a.len() <= 10 && !a.is_empty());
}

#[test]
fn errors_name_the_path() {
    let y = DEPLOY.replace(
        "      - name: main\n",
        "      - name: side\n        image: busybox\n        ports: [{containerPort: 80}]\n      - name: main\n        ports: [{containerPort: 99999}]\n",
    );
    let e = plan_of(&y).unwrap_err().to_string();
    assert!(
        e.contains("spec.template.spec.containers[1].ports[0].containerPort"),
        "{e}"
    );
    let e = plan_of(&DEPLOY.replace("replicas: 3", "replicas: three"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("document 3 (Deployment web): spec.replicas:"),
        "{e}"
    );
    let e = plan_of(&DEPLOY.replace("matchLabels: {app: web}", "matchLabels: {app: other}"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("spec.selector.matchLabels.app"), "{e}");
    let e = parse("t.yaml", "kind: Pod\nmetadata: {name: a}\nspec: [").unwrap_err();
    assert!(matches!(e, Error::Yaml { .. }), "{e}");
}

#[test]
fn unknown_fields_and_kinds_warn() {
    let y = DEPLOY.replace(
        "        image: busybox:1.36\n",
        "        image: busybox:1.36\n        frobnicate: 1\n",
    ) + "---\nkind: Ingress\nmetadata: {name: x}\n";
    let p = plan_of(&y).unwrap();
    assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
    assert!(
        p.warnings[0].contains("spec.template.spec.containers[0].frobnicate"),
        "{:?}",
        p.warnings
    );
    assert!(p.warnings[1].contains("Ingress"), "{:?}", p.warnings);
}

#[test]
fn kinds_and_job_bounds() {
    let y = r#"
kind: Job
metadata: {name: jj}
spec:
  completions: 3
  parallelism: 2
  backoffLimit: 1
  activeDeadlineSeconds: 30
  template:
    spec:
      restartPolicy: Never
      initContainers: [{name: i1, image: busybox}, {name: i2, image: busybox}]
      containers: [{name: c, image: busybox}]
---
kind: DaemonSet
metadata: {name: dd}
spec: {selector: {matchLabels: {a: b}}, template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: busybox}]}}}
---
kind: ReplicaSet
metadata: {name: rr}
spec: {replicas: 2, selector: {matchLabels: {a: r}}, template: {metadata: {labels: {a: r}}, spec: {containers: [{name: c, image: busybox}]}}}
---
kind: PersistentVolumeClaim
metadata: {name: data}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
kind: Pod
metadata: {name: pp}
spec:
  hostNetwork: true
  securityContext: {runAsUser: 1000, runAsGroup: 100, fsGroup: 5}
  containers:
  - name: c
    image: busybox
    securityContext: {capabilities: {add: [NET_ADMIN], drop: [ALL]}, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false}
    volumeMounts: [{name: d, mountPath: /d}, {name: h, mountPath: /h, subPath: x, readOnly: true}, {name: m, mountPath: /m}]
  volumes: [{name: d, persistentVolumeClaim: {claimName: data}}, {name: h, hostPath: {path: /tmp, type: Directory}}, {name: m, emptyDir: {medium: Memory, sizeLimit: 1Mi}}]
"#;
    let p = plan_of(y).unwrap();
    let kinds: Vec<Kind> = p.workloads.iter().map(|w| w.kind).collect();
    assert_eq!(
        kinds,
        [Kind::Job, Kind::DaemonSet, Kind::ReplicaSet, Kind::Pod]
    );
    let j = &p.workloads[0];
    assert_eq!(j.replicas, 2);
    assert_eq!(
        j.job,
        Some(JobPlan {
            completions: 3,
            parallelism: 2,
            backoff_limit: 1,
            active_deadline_seconds: Some(30),
            on_failure: false,
        })
    );
    let jp = j.pod("jj-abcde", 0).unwrap();
    assert_eq!(jp.init_containers.len(), 2);
    assert_eq!(jp.containers[0].spec.lifecycle.restart, RestartPolicy::No);
    assert_eq!(p.workloads[2].replicas, 2);
    assert_eq!(p.claims[0].name, "data");
    let pod = p.workloads[3].pod("pp", 0).unwrap();
    assert_eq!(pod.spec.net, NamespaceMode::Host);
    let c = &pod.containers[0].spec;
    assert_eq!(c.process.user.as_deref(), Some("1000:100"));
    assert_eq!(c.process.groups, ["5"]);
    assert!(c.storage.read_only && c.security.no_new_privileges);
    assert_eq!(c.security.cap_drop, ["ALL"]);
    assert_eq!(c.storage.mounts[1].source, "/tmp");
    assert_eq!(c.storage.mounts[1].sub_path.as_deref(), Some("x"));
    assert!(c.storage.mounts[1].readonly);
    // A Memory emptyDir: one tmpfs volume for the pod, its size given.
    assert_eq!(c.storage.mounts[2].kind, MountType::Volume);
    let tmp = pod
        .volumes
        .iter()
        .find(|v| v.name == c.storage.mounts[2].source)
        .unwrap();
    assert_eq!(tmp.options["type"], "tmpfs");
    // With the pod's fsGroup 5: its group and the setgid bit.
    assert_eq!(
        tmp.options["o"],
        format!("size={},mode=3777,gid=5", 1 << 20)
    );
    assert_eq!(tmp.dir, None);
    assert_eq!(pod.claims, ["data"]);
    let bad = y.replace("restartPolicy: Never", "restartPolicy: Always");
    assert!(plan_of(&bad)
        .unwrap_err()
        .to_string()
        .contains("spec.template.spec.restartPolicy"));
    // OnFailure: retries in the pod, counted against backoffLimit.
    let onf = plan_of(&y.replace("restartPolicy: Never", "restartPolicy: OnFailure")).unwrap();
    assert!(onf.workloads[0].job.unwrap().on_failure);
    // No restartPolicy: "missing", not a Rust None.
    let e = plan_of(&y.replace("restartPolicy: Never", "hostname: jj"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "spec.template.spec.restartPolicy: missing: a Job's pods need Never or OnFailure"
        ),
        "{e}"
    );
    assert!(!e.contains("None"), "{e}");
}

#[test]
fn quantities_and_vars() {
    assert_eq!(parse_memory(&Quantity::String("1Gi".into())), Some(1 << 30));
    assert_eq!(parse_memory(&Quantity::String("1e3".into())), Some(1000));
    assert_eq!(parse_memory(&Quantity::String("-1".into())), None);
    assert_eq!(parse_cpu(&Quantity::String("250m".into())), Some(0.25));
    assert_eq!(parse_cpu(&Quantity::Int(2)), Some(2.0));
    let v: BTreeMap<String, String> = [("A".to_string(), "1".to_string())].into();
    assert_eq!(expand_vars("$(A)-$(B)-$$(A)-$", &v), "1-$(B)-$(A)-$");
    assert_eq!(decode_base64("aGk="), Some(b"hi".to_vec()));
    for data in [
        &b""[..],
        b"h",
        b"hi",
        b"hi!",
        b"s3cr3t",
        &[0u8, 255, 128, 7][..],
    ] {
        assert_eq!(decode_base64(&encode_base64(data)), Some(data.to_vec()));
    }
    assert_eq!(encode_base64(b"s3cr3t"), "czNjcjN0");
    assert_eq!(encode_base64(b"hi"), "aGk=");
    assert_eq!(encode_base64(b"h"), "aA==");
}

#[test]
fn hostile_input_is_an_error_not_a_panic() {
    for y in [
        "kind: Pod\nmetadata: {name: ../x}\n",
        "kind: Pod\nmetadata: {name: a}\nspec: {containers: []}\n",
        "kind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, image: i, volumeMounts: [{name: v, mountPath: /x}]}], volumes: [{name: v, configMap: {name: m, items: [{key: k, path: ../../etc}]}}]}\n---\nkind: ConfigMap\nmetadata: {name: m}\ndata: {k: v}\n",
        "- 1\n- 2\n",
        "kind: 7\n",
        "a: &a [*a]\n",
    ] {
        let r = parse("t.yaml", y).and_then(|m| plan(&m, &Options::default()));
        assert!(r.is_err(), "{y}");
    }
}

#[test]
fn node_port_and_host_port_are_the_first_pods() {
    let y = DEPLOY.to_string()
        + "---\nkind: Service\nmetadata: {name: np}\nspec: {type: NodePort, selector: {app: web}, ports: [{port: 8080, targetPort: 80, nodePort: 30080}]}\n";
    let p = plan_of(&y).unwrap();
    let w = &p.workloads[0];
    let first = w.pod("web-a-bcdfg", 0).unwrap();
    let ports: Vec<(u16, u16)> = first
        .spec
        .network
        .ports
        .iter()
        .map(|m| (m.host_port, m.container_port))
        .collect();
    assert_eq!(ports, [(30080, 80)]);
    assert_eq!(first.spec.network.networks[0].aliases, ["websvc", "np"]);
    assert!(w
        .pod("web-a-bcdfh", 1)
        .unwrap()
        .spec
        .network
        .ports
        .is_empty());
    // A hostPort, likewise.
    let y = DEPLOY.replace(
        "        image: busybox:1.36\n",
        "        image: busybox:1.36\n        ports: [{containerPort: 80, hostPort: 8080}]\n",
    );
    let p = plan_of(&y).unwrap();
    let pod = p.workloads[0].pod("web-a-bcdfg", 0).unwrap();
    assert_eq!(pod.spec.network.ports[0].host_port, 8080);
}

#[test]
fn downward_api_volume_files() {
    let y = r#"
kind: Pod
apiVersion: v1
metadata:
  name: dp
  labels: {app: dp, tier: "a\"b"}
  annotations: {note: hi}
spec:
  containers:
  - name: c
    image: busybox
    volumeMounts: [{name: info, mountPath: /info}]
  volumes:
  - name: info
    downwardAPI:
      defaultMode: 0440
      items:
      - {path: name, fieldRef: {fieldPath: metadata.name}}
      - {path: ns, fieldRef: {fieldPath: metadata.namespace}}
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: sub/note, fieldRef: {fieldPath: "metadata.annotations['note']"}, mode: 0400}
"#;
    let p = plan_of(y).unwrap();
    let pod = p.workloads[0].pod("dp", 0).unwrap();
    let files: Vec<(String, String, u32)> = pod.volumes[0]
        .files
        .iter()
        .map(|f| {
            (
                f.path.clone(),
                String::from_utf8_lossy(&f.data).into_owned(),
                f.mode,
            )
        })
        .collect();
    assert_eq!(files[0], ("name".into(), "dp".into(), 0o440));
    assert_eq!(files[1], ("ns".into(), "default".into(), 0o440));
    assert!(files[2].1.contains("app=\"dp\""), "{:?}", files[2]);
    assert!(files[2].1.contains("tier=\"a\\\"b\""), "{:?}", files[2]);
    assert_eq!(files[3], ("sub/note".into(), "hi".into(), 0o400));
    assert!(pod.containers[0].spec.storage.mounts[0].readonly);
    let e = plan_of(&y.replace("metadata.namespace", "status.phase"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("spec.volumes[0].downwardAPI.items[1].fieldRef.fieldPath"),
        "{e}"
    );
}

#[test]
fn lifecycle_hooks_become_monitor_hooks_bounded_by_the_grace_period() {
    let y = r#"
kind: Pod
metadata: {name: hk}
spec:
  terminationGracePeriodSeconds: 7
  initContainers: []
  containers:
  - name: c
    image: busybox:1.36
    ports: [{name: web, containerPort: 8080}]
    lifecycle:
      postStart: {exec: {command: [touch, /tmp/up]}}
      preStop: {httpGet: {port: web, path: /bye}}
"#;
    let p = plan_of(y).unwrap();
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    let pod = p.workloads[0].pod("hk", 0).unwrap();
    let hooks = &pod.containers[0].spec.health.hooks;
    assert_eq!(hooks.len(), 2);
    assert_eq!(
        (hooks[0].kind.as_str(), hooks[0].timeout_ms),
        ("post-start", 7000)
    );
    assert_eq!(hooks[1].kind, "pre-stop");
    assert!(matches!(
        &hooks[1].handler,
        berth_engine::health::Handler::HttpGet { port: 8080, path, .. } if path == "/bye"
    ));
    assert!(pod.containers[0].spec.health.probes.is_empty());
    // Kubernetes 1.29's sleep action.
    let p = plan_of(&y.replace("httpGet: {port: web, path: /bye}", "sleep: {seconds: 3}")).unwrap();
    let pod = p.workloads[0].pod("hk", 0).unwrap();
    let pre = &pod.containers[0].spec.health.hooks[1];
    assert_eq!(
        (&pre.handler, pre.timeout_ms),
        (&berth_engine::health::Handler::Sleep { seconds: 3 }, 7000)
    );
    let p = plan_of(&y.replace("httpGet: {port: web, path: /bye}", "sleep: {seconds: 0}")).unwrap();
    let pod = p.workloads[0].pod("hk", 0).unwrap();
    assert_eq!(
        pod.containers[0].spec.health.hooks[1].handler,
        berth_engine::health::Handler::Sleep { seconds: 0 }
    );
    let e = plan_of(&y.replace("httpGet: {port: web, path: /bye}", "sleep: {seconds: -1}"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("spec.containers[0].lifecycle.preStop.sleep.seconds"),
        "{e}"
    );
    let e = plan_of(&y.replace(
        "httpGet: {port: web, path: /bye}",
        "{sleep: {seconds: 1}, exec: {command: [x]}}",
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("spec.containers[0].lifecycle.preStop"), "{e}");
    let e = plan_of(&y.replace("initContainers: []", "initContainers: [{name: i, image: busybox:1.36, lifecycle: {preStop: {exec: {command: [x]}}}}]"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("spec.initContainers[0].lifecycle"), "{e}");
}

#[test]
fn a_probes_own_grace_period_is_carried_to_the_engine() {
    let y = r#"
kind: Pod
metadata: {name: gp}
spec:
  terminationGracePeriodSeconds: 9
  containers:
  - name: c
    image: busybox:1.36
    livenessProbe: {exec: {command: ["true"]}, terminationGracePeriodSeconds: 2}
    startupProbe: {exec: {command: ["true"]}}
"#;
    let p = plan_of(y).unwrap();
    let pod = p.workloads[0].pod("gp", 0).unwrap();
    let c = &pod.containers[0].spec;
    assert_eq!(c.process.stop_timeout, Some(9));
    let graces: Vec<_> = c
        .health
        .probes
        .iter()
        .map(|p| (p.kind.as_str(), p.termination_grace_s))
        .collect();
    assert_eq!(graces, [("liveness", Some(2)), ("startup", None)]);
    let e = plan_of(&y.replace(
        "terminationGracePeriodSeconds: 2",
        "terminationGracePeriodSeconds: 0",
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("spec.containers[0].livenessProbe.terminationGracePeriodSeconds"),
        "{e}"
    );
    let e = plan_of(&y.replace("livenessProbe", "readinessProbe"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("spec.containers[0].readinessProbe.terminationGracePeriodSeconds"),
        "{e}"
    );
}

#[test]
fn pod_fields_are_filled_once_the_pod_is_made() {
    let y = r#"
kind: Pod
metadata: {name: pf}
spec:
  containers:
  - name: c
    image: busybox:1.36
    command: [echo, "$(IP) $(HOSTS)"]
    env:
    - {name: IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: HOSTS, valueFrom: {fieldRef: {fieldPath: status.hostIPs}}}
    - {name: UID, valueFrom: {fieldRef: {fieldPath: metadata.uid}}}
"#;
    let p = plan_of(y).unwrap();
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    let mut spec = p.workloads[0].pod("pf", 0).unwrap().containers[0]
        .spec
        .clone();
    fill_pod_fields(
        &mut spec,
        &PodFields {
            uid: "u-1".into(),
            pod_ips: vec!["10.0.0.2".into(), "fd00::2".into()],
            host_ips: vec!["192.0.2.1".into(), "2001:db8::1".into()],
        },
    );
    assert!(spec.process.env.contains(&"IP=10.0.0.2".to_string()));
    assert!(spec
        .process
        .env
        .contains(&"HOSTS=192.0.2.1,2001:db8::1".to_string()));
    assert!(spec.process.env.contains(&"UID=u-1".to_string()));
    assert_eq!(
        spec.process.entrypoint.as_deref().unwrap(),
        ["echo", "10.0.0.2 192.0.2.1,2001:db8::1"]
    );
}

/// A downwardAPI volume's resourceFieldRef files: a container's limits
/// and requests in units of the divisor, rounded up; the container is
/// named, and an unknown one or resource is an error naming the path.
#[test]
fn downward_api_resource_files() {
    let y = r#"
kind: Pod
metadata: {name: res}
spec:
  containers:
  - name: app
    image: x
    resources: {limits: {cpu: 1500m, memory: 64Mi}, requests: {cpu: 250m}}
    volumeMounts: [{name: info, mountPath: /info}]
  volumes:
  - name: info
    downwardAPI:
      items:
      - {path: cpu, resourceFieldRef: {containerName: app, resource: limits.cpu}}
      - {path: mem, resourceFieldRef: {containerName: app, resource: limits.memory, divisor: 1Mi}}
      - {path: req, resourceFieldRef: {containerName: app, resource: requests.cpu, divisor: 1m}}
      - {path: unset, resourceFieldRef: {containerName: app, resource: requests.memory}}
"#;
    let p = plan_of(y).unwrap();
    let pod = p.workloads[0].pod("res", 0).unwrap();
    let v = pod.volumes.iter().find(|v| v.name == "res-info").unwrap();
    let file = |n: &str| {
        String::from_utf8(v.files.iter().find(|f| f.path == n).unwrap().data.clone()).unwrap()
    };
    assert_eq!(file("cpu"), "2");
    assert_eq!(file("mem"), "64");
    assert_eq!(file("req"), "250");
    assert_eq!(file("unset"), "");
    assert!(
        p.warnings.iter().any(|w| w.contains("requests.memory")),
        "{:?}",
        p.warnings
    );
    // Near i64::MAX: rounded up without overflow (it panicked).
    let huge = y
        .replace("memory: 64Mi", "memory: 8E")
        .replace("divisor: 1Mi", "divisor: 8E");
    let p = plan_of(&huge).unwrap();
    let pod = p.workloads[0].pod("res", 0).unwrap();
    let v = pod.volumes.iter().find(|v| v.name == "res-info").unwrap();
    assert!(v.pod_fields);
    assert_eq!(v.files.iter().find(|f| f.path == "mem").unwrap().data, b"1");
    for (from, to, path) in [
        (
            "containerName: app, resource: limits.cpu}",
            "resource: limits.cpu}",
            "items[0].resourceFieldRef.containerName",
        ),
        (
            "containerName: app, resource: limits.cpu}",
            "containerName: nope, resource: limits.cpu}",
            "items[0].resourceFieldRef.containerName",
        ),
        (
            "resource: limits.cpu}",
            "resource: limits.gpu}",
            "items[0].resourceFieldRef.resource",
        ),
    ] {
        let e = plan_of(&y.replacen(from, to, 1)).unwrap_err().to_string();
        assert!(e.contains(path), "{to}: {e}");
    }
}

/// A Memory emptyDir's sizeLimit is its tmpfs's size; 0 (which tmpfs
/// takes as no limit) is no sizeLimit, not an unlimited one.
#[test]
fn memory_empty_dir_size() {
    let y = |limit: &str| {
        format!(
            "kind: Pod\nmetadata: {{name: mm}}\nspec:\n  containers: [{{name: c, image: x, volumeMounts: [{{name: s, mountPath: /s}}]}}]\n  volumes: [{{name: s, emptyDir: {{medium: Memory{limit}}}}}]\n"
        )
    };
    let opts = |limit: &str| {
        let p = plan_of(&y(limit)).unwrap();
        let pod = p.workloads[0].pod("m", 0).unwrap();
        let v = pod
            .volumes
            .iter()
            .find(|v| v.name == "m-s")
            .unwrap()
            .clone();
        assert!(!v.pod_fields);
        v.options
    };
    assert_eq!(
        opts(", sizeLimit: 2Mi").get("o").map(String::as_str),
        Some("size=2097152")
    );
    assert_eq!(opts(", sizeLimit: 0").get("o"), None);
    assert_eq!(opts("").get("o"), None);
    assert_eq!(opts("")["type"], "tmpfs");
}

/// subPathExpr: the container's $(VAR)s expanded (a per-pod directory of
/// a shared volume); a path that expands to `..` or is given with subPath
/// is an error naming the field.
#[test]
fn sub_path_expr_expands_the_containers_vars() {
    let y = r#"
kind: Pod
metadata: {name: pp}
spec:
  containers:
  - name: c
    image: x
    env:
    - {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: UP, value: ".."}
    volumeMounts: [{name: logs, mountPath: /logs, subPathExpr: "pods/$(POD)"}]
  volumes: [{name: logs, hostPath: {path: /srv/logs}}]
"#;
    let p = plan_of(y).unwrap();
    let pod = p.workloads[0].pod("pp", 0).unwrap();
    let m = &pod.containers[0].spec.storage.mounts[0];
    assert_eq!(m.source, "/srv/logs");
    assert_eq!(m.sub_path.as_deref(), Some("pods/pp"));
    let e = plan_of(&y.replace("pods/$(POD)", "$(UP)/x"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("volumeMounts[0].subPathExpr"), "{e}");
    let both = y.replace("subPathExpr: \"pods/$(POD)\"", "subPath: a, subPathExpr: b");
    let e = plan_of(&both).unwrap_err().to_string();
    assert!(e.contains("subPathExpr") && e.contains("both"), "{e}");
}

/// An emptyDir on disk is 0777 as the kubelet makes it (a container that
/// is not root's may write in it); with an fsGroup, the group's, setgid.
#[test]
fn empty_dirs_are_writable_by_anyone_and_owned_by_the_fs_group() {
    let y = r#"
kind: Pod
metadata: {name: pp}
spec:
  securityContext: {runAsUser: 1000}
  containers:
  - {name: c, image: busybox, volumeMounts: [{name: e, mountPath: /e}, {name: m, mountPath: /m}]}
  volumes: [{name: e, emptyDir: {}}, {name: m, emptyDir: {medium: Memory}}]
"#;
    let vol = |y: &str, n: &str| {
        let p = plan_of(y).unwrap();
        p.workloads[0]
            .pod("pp", 0)
            .unwrap()
            .volumes
            .into_iter()
            .find(|v| v.name == n)
            .unwrap()
    };
    assert_eq!(
        vol(y, "pp-e").dir,
        Some(DirOwner {
            mode: 0o777,
            gid: None
        })
    );
    // A tmpfs's root is 1777 already.
    assert!(!vol(y, "pp-m").options.contains_key("o"));
    let g = y.replace("runAsUser: 1000}", "runAsUser: 1000, fsGroup: 2000}");
    assert_eq!(
        vol(&g, "pp-e").dir,
        Some(DirOwner {
            mode: 0o2777,
            gid: Some(2000)
        })
    );
    assert_eq!(vol(&g, "pp-m").options["o"], "mode=3777,gid=2000");
    let bad = y.replace("runAsUser: 1000}", "fsGroup: -1}");
    let e = plan_of(&bad).unwrap_err().to_string();
    assert!(
        e.contains("spec.securityContext.fsGroup: -1 is not an id"),
        "{e}"
    );
}

/// Any change to the pod template rolls the pods, its annotations too
/// (`kubectl rollout restart` writes only restartedAt).
#[test]
fn template_annotations_are_in_the_hash() {
    let hash = |y: &str| plan_of(y).unwrap().workloads[0].template_hash.clone();
    let a = hash(DEPLOY);
    let noted = DEPLOY.replace(
        "    metadata: {labels: {app: web}}\n",
        "    metadata: {labels: {app: web}, annotations: {kubectl.kubernetes.io/restartedAt: \"2024-01-01T00:00:00Z\"}}\n",
    );
    assert_ne!(noted, DEPLOY);
    let b = hash(&noted);
    assert_ne!(a, b);
    assert_ne!(b, hash(&noted.replace("2024-01-01", "2024-01-02")));
    assert_eq!(b, hash(&noted));
}

/// Kubernetes' name rules: ConfigMaps, Secrets, claims and workloads are
/// DNS subdomains (dots too), a Service's a DNS label; one character is a
/// name; a workload's pod names fit a host name.
#[test]
fn names_follow_kubernetes_rules() {
    let y = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: app.config}
data: {k: v}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data.v1}
---
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: c
    image: busybox
    env: [{name: K, valueFrom: {configMapKeyRef: {name: app.config, key: k}}}]
    volumeMounts: [{name: d, mountPath: /d}]
  volumes: [{name: d, persistentVolumeClaim: {claimName: data.v1}}]
"#;
    let p = plan_of(y).unwrap();
    let pod = p.workloads[0].pod("p", 0).unwrap();
    assert!(pod.containers[0]
        .spec
        .process
        .env
        .contains(&"K=v".to_string()));
    assert_eq!(pod.claims, ["data.v1"]);
    let long = "d".repeat(63);
    let dep = DEPLOY.replace(
        "metadata: {name: web}",
        &format!("metadata: {{name: {long}}}"),
    );
    let p = plan_of(&dep).unwrap();
    let w = &p.workloads[0];
    let name = generated_name(&w.pod_prefix(), "bcdfg");
    assert_eq!(name.len(), 63, "{name}");
    assert!(name.starts_with(&long[..58]) && name.ends_with("bcdfg"));
    assert!(is_dns_subdomain(&name, 63));
    w.pod(&name, 0).unwrap();
    // Short prefixes are kept whole.
    assert_eq!(generated_name("web-abc-", "bcdfg"), "web-abc-bcdfg");
    for (bad, why) in [
        (
            DEPLOY.replace(
                "metadata: {name: web}",
                &format!("metadata: {{name: {long}d}}"),
            ),
            "at most 63 in berth",
        ),
        (
            DEPLOY.replace("metadata: {name: web}", "metadata: {name: Web}"),
            "not a DNS subdomain",
        ),
        (
            DEPLOY.replace("metadata: {name: web}", "metadata: {name: web..x}"),
            "not a DNS subdomain",
        ),
        (
            DEPLOY.replace("metadata: {name: websvc}", "metadata: {name: web.svc}"),
            "not a DNS label",
        ),
        (
            DEPLOY.replace("metadata: {name: cfg}", "metadata: {name: \"\"}"),
            "not a DNS subdomain",
        ),
    ] {
        let e = plan_of(&bad).unwrap_err().to_string();
        assert!(e.contains("metadata.name") && e.contains(why), "{e}");
    }
}

/// A PersistentVolumeClaim's standard fields are read without a warning;
/// an access mode Kubernetes does not know is an error.
#[test]
fn claims_standard_fields_are_accepted() {
    let y = r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
"#;
    let p = plan_of(y).unwrap();
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(p.claims[0].name, "data");
    let e = plan_of(&y.replace("ReadWriteOnce", "ReadWriteSometimes"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("spec.accessModes[0]"), "{e}");
    let e = plan_of(&y.replace("1Gi", "lots")).unwrap_err().to_string();
    assert!(e.contains("spec.resources.requests.storage"), "{e}");
}

/// An apiVersion that does not serve the kind, and two objects of a kind
/// with one name, are refused before anything is made.
#[test]
fn mismatched_api_versions_and_twice_named_objects_are_refused() {
    let pod = |name: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec: {{containers: [{{name: c, image: busybox}}]}}\n")
    };
    let e = parse("t.yaml", &pod("a").replace("v1", "apps/v1"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("(Pod a): apiVersion: \"apps/v1\" does not serve kind Pod: it is v1"),
        "{e}"
    );
    let e = parse(
        "t.yaml",
        &DEPLOY.replace("apiVersion: apps/v1", "apiVersion: batch/v1"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("kind Deployment: it is apps/v1"), "{e}");
    let e = parse("t.yaml", &format!("{}---\n{}", pod("a"), pod("a")))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("document 2 (Pod a): metadata.name: \"a\": t.yaml: document 1 (Pod a) has this name already"),
        "{e}"
    );
    // Objects of different kinds may share a name.
    let both = format!("{}---\n{}", pod("web"), DEPLOY);
    plan_of(&both).unwrap();
}

fn deployment_with(replicas: u32, spec: &str) -> Result<Plan> {
    plan_of(&format!(
        "kind: Deployment\napiVersion: apps/v1\nmetadata: {{name: d}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: d}}}}\n{spec}  template:\n    metadata: {{labels: {{app: d}}}}\n    spec:\n      containers: [{{name: c, image: busybox}}]\n"
    ))
}

/// maxSurge rounds up, maxUnavailable down; both written as 0 is
/// refused, both 0 after rounding is maxUnavailable 1 (Kubernetes'
/// ResolveFenceposts); Recreate; progressDeadlineSeconds.
#[test]
fn rollout_bounds_resolve_as_kubernetes_does() {
    let r =
        |replicas: u32, spec: &str| deployment_with(replicas, spec).map(|p| p.workloads[0].rollout);
    let d = r(4, "").unwrap();
    assert_eq!(
        (
            d.max_surge,
            d.max_unavailable,
            d.recreate,
            d.progress_deadline_s
        ),
        (1, 1, false, 600)
    );
    let d = r(
        3,
        "  strategy: {rollingUpdate: {maxSurge: 50%, maxUnavailable: 50%}}\n",
    )
    .unwrap();
    assert_eq!((d.max_surge, d.max_unavailable), (2, 1));
    let d = r(1, "").unwrap();
    assert_eq!((d.max_surge, d.max_unavailable), (1, 0));
    // replicas 0: 25% of 0 is 0 both ways: not an error.
    let d = r(0, "").unwrap();
    assert_eq!((d.max_surge, d.max_unavailable), (0, 1));
    let d = r(
        2,
        "  strategy: {rollingUpdate: {maxSurge: 10%, maxUnavailable: 0}}\n",
    )
    .unwrap();
    assert_eq!((d.max_surge, d.max_unavailable), (1, 0));
    for zero in [
        "{maxSurge: 0, maxUnavailable: 0}",
        "{maxSurge: 0%, maxUnavailable: \"0\"}",
    ] {
        let e = r(2, &format!("  strategy: {{rollingUpdate: {zero}}}\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("spec.strategy.rollingUpdate") && e.contains("both 0"),
            "{e}"
        );
    }
    let d = r(
        3,
        "  strategy: {type: Recreate}\n  progressDeadlineSeconds: 5\n",
    )
    .unwrap();
    assert_eq!(
        (d.max_surge, d.recreate, d.progress_deadline_s),
        (0, true, 5)
    );
    let e = r(3, "  progressDeadlineSeconds: 0\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("spec.progressDeadlineSeconds"), "{e}");
    let e = r(
        3,
        "  strategy: {type: Recreate, rollingUpdate: {maxSurge: 1}}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("spec.strategy.rollingUpdate"), "{e}");
}

/// `kube down` needs only kinds and names: a reference to a ConfigMap
/// that is not in the file does not stop it.
#[test]
fn objects_resolve_nothing() {
    let y = "kind: Deployment\napiVersion: apps/v1\nmetadata: {name: cc}\nspec:\n  selector: {matchLabels: {app: cc}}\n  template:\n    metadata: {labels: {app: cc}}\n    spec:\n      containers:\n      - name: c\n        image: busybox\n        env: [{name: K, valueFrom: {configMapKeyRef: {name: extcm, key: k}}}]\n---\nkind: Pod\napiVersion: v1\nmetadata: {name: p}\nspec: {containers: [{name: c, image: busybox}]}\n---\nkind: ConfigMap\napiVersion: v1\nmetadata: {name: x}\n";
    let m = parse("t.yaml", y).unwrap();
    assert!(plan(&m, &Options::default()).is_err());
    assert_eq!(
        objects(&m),
        [
            (Kind::Deployment, "cc".to_string()),
            (Kind::Pod, "p".to_string())
        ]
    );
}
