//! Kubernetes YAML from hostile input: `berth kube play`'s parse and plan
//! give a plan or one error naming the path, never a panic; every pod of
//! a plan translates, and each container spec in it validates.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(m) = berth_kube::parse("fuzz.yaml", text) else {
        return;
    };
    for network in ["", "net1"] {
        let opts = berth_kube::Options {
            network: network.into(),
        };
        let Ok(plan) = berth_kube::plan(&m, &opts) else {
            continue;
        };
        for w in &plan.workloads {
            let name = format!("{}abcde", w.pod_prefix());
            for index in [0, 1] {
                // The plan checked the template with another name: a name
                // of the workload's form translates too.
                let pod = w.pod(&name, index).expect("a planned workload's pod");
                for c in pod.init_containers.iter().chain(&pod.containers) {
                    c.spec.validate().expect("a planned container's spec");
                }
                for v in &pod.volumes {
                    for f in &v.files {
                        assert!(!f.path.starts_with('/') && !f.path.split('/').any(|c| c == ".."));
                    }
                }
            }
        }
    }
});
