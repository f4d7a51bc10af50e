//! Downloads one file by its http(s) URL (`ADD https://...` in a build):
//! redirects followed (10 at most), the size limited, the content's
//! digest returned, and checked against the one expected if given.

use crate::error::{Error, Result};
use crate::layer::HashingWriter;
use crate::Digest;
use std::io::{Read, Write};
use std::time::Duration;

/// What a download gave.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub digest: Digest,
    pub size: u64,
}

/// Writes the body of `url` to `out`, `max` bytes at most; with `expect`,
/// fails (having written it) unless the content has that digest.
pub fn fetch(url: &str, out: &mut dyn Write, max: u64, expect: Option<&Digest>) -> Result<Fetched> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(Error::Usage(format!(
            "{url}: only http:// and https:// URLs can be downloaded"
        )));
    }
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(30))
        .timeout_read(Duration::from_secs(60))
        .redirects(10)
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
        .build();
    let net = |msg: String| Error::Network {
        registry: url.to_string(),
        msg,
    };
    let resp = match agent.get(url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(code, r)) => {
            return Err(net(format!("download: {code} {}", r.status_text())))
        }
        Err(e) => return Err(net(format!("download: {e}"))),
    };
    let mut w = HashingWriter::new(out);
    let mut body = resp.into_reader().take(max + 1);
    std::io::copy(&mut body, &mut w).map_err(|e| net(format!("download: {e}")))?;
    let (digest, size, _) = w.finish();
    if size > max {
        return Err(net(format!(
            "download: larger than {max} bytes (the limit of a download)"
        )));
    }
    if let Some(want) = expect {
        if *want != digest {
            return Err(Error::DigestMismatch {
                what: url.to_string(),
                want: want.to_string(),
                got: digest.to_string(),
            });
        }
    }
    Ok(Fetched { digest, size })
}
