//! Readiness gating a Service's name: the network aliases of a pod made by
//! `berth kube play` (its Services' names, its subdomain) are answered by
//! the DNS responder only while every (non-init) container of the pod is
//! ready. The DNS files are written in `networks.rs` (`write_dns_file`
//! asks [`Engine::kube_withholds_aliases`] of each record); this module
//! says when a pod's aliases are withheld and rewrites its network's DNS
//! file when the readiness of one of its containers changes.

use crate::records::Record;
use crate::Engine;

/// The label `berth kube play` puts on the pods it makes (berth-kube's
/// `LABEL_KIND`; berth-kube sits above the engine).
const LABEL_KUBE_KIND: &str = "io.berth.kube.kind";
/// The label of a pod's containers made by play (`init:NAME` for an init
/// container, which never counts for readiness).
pub(crate) const LABEL_KUBE_CONTAINER: &str = "io.berth.kube.container";

impl Engine {
    /// Whether `r`, the infra container of a pod `kube play` made, has its
    /// network aliases withheld from the DNS responder: a member of the
    /// pod is not ready (or there is none). Reads records and health
    /// files only (no lock: it runs under the network lock).
    pub(crate) fn kube_withholds_aliases(&self, r: &Record) -> bool {
        let Some(pod_id) = &r.spec.pod else {
            return false;
        };
        let Ok(pod) = self.pod(pod_id) else {
            return false;
        };
        if pod.infra_id.as_deref() != Some(r.id.as_str())
            || !pod.spec.labels.contains_key(LABEL_KUBE_KIND)
        {
            return false;
        }
        let Ok(all) = self.records.all() else {
            return true;
        };
        let mut members = all.iter().filter(|m| {
            m.spec.pod.as_deref() == Some(pod.id.as_str())
                && m.id != r.id
                && !m
                    .spec
                    .metadata
                    .labels
                    .get(LABEL_KUBE_CONTAINER)
                    .is_some_and(|c| c.starts_with("init:"))
        });
        let mut any = false;
        let all_ready = members.all(|m| {
            any = true;
            self.readiness(m)
        });
        !(any && all_ready)
    }

    /// The readiness of container `id` (a member of a pod `kube play`
    /// made) may have changed: its pod's aliases are added to or
    /// withdrawn from its networks' DNS files at once.
    pub fn kube_readiness_changed(&self, id: &str) {
        let Ok(Some(rec)) = self.records.get(id) else {
            return;
        };
        let Some(pod_id) = &rec.spec.pod else {
            return;
        };
        let Ok(pod) = self.pod(pod_id) else {
            return;
        };
        if !pod.spec.labels.contains_key(LABEL_KUBE_KIND) {
            return;
        }
        if let Some(infra) = &pod.infra_id {
            self.refresh_dns(infra);
        }
    }
}
