//! Where the HTTP server listens: one or more `host:port` addresses
//! (`--web.listen-address`, repeatable), or the sockets systemd hands over on socket
//! activation (`--web.systemd-socket`: `LISTEN_PID`/`LISTEN_FDS`, descriptors from 3).

use std::net::SocketAddr;

use tokio::net::TcpListener;

/// How to get the listening sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// Bind each `host:port` (port 0 picks a free port).
    Addresses(Vec<String>),
    /// Take the sockets passed by systemd socket activation.
    SystemdSocket,
}

/// Why the sockets could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error("no listen address given")]
    NoAddress,
    #[error("--web.systemd-socket: {0}")]
    Systemd(String),
}

/// Bind or take over the listening sockets; each with the address it listens on.
pub async fn open(listen: &Listen) -> Result<Vec<(TcpListener, SocketAddr)>, ListenError> {
    let listeners = match listen {
        Listen::Addresses(addresses) if addresses.is_empty() => return Err(ListenError::NoAddress),
        Listen::Addresses(addresses) => {
            let mut out = Vec::with_capacity(addresses.len());
            for address in addresses {
                let l = TcpListener::bind(address)
                    .await
                    .map_err(|source| ListenError::Bind {
                        address: address.clone(),
                        source,
                    })?;
                out.push(l);
            }
            out
        }
        Listen::SystemdSocket => systemd_sockets()?,
    };
    listeners
        .into_iter()
        .map(|l| {
            let addr = l.local_addr().map_err(|source| ListenError::Bind {
                address: "(bound socket)".into(),
                source,
            })?;
            Ok((l, addr))
        })
        .collect()
}

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
#[cfg(unix)]
const LISTEN_FDS_START: i32 = 3;

/// The sockets of `LISTEN_FDS`, checked against `LISTEN_PID` as `sd_listen_fds(3)` does.
#[cfg(unix)]
fn systemd_sockets() -> Result<Vec<TcpListener>, ListenError> {
    use std::os::fd::FromRawFd;

    let var = |name: &str| {
        std::env::var(name).map_err(|_| {
            ListenError::Systemd(format!(
                "{name} is not set: start the exporter from a systemd .socket unit (or systemd-socket-activate)"
            ))
        })
    };
    let pid: u32 = var("LISTEN_PID")?
        .trim()
        .parse()
        .map_err(|_| ListenError::Systemd("LISTEN_PID is not a number".into()))?;
    if pid != std::process::id() {
        return Err(ListenError::Systemd(format!(
            "LISTEN_PID is {pid}, not this process ({}): the sockets were meant for another process",
            std::process::id()
        )));
    }
    let count: i32 = var("LISTEN_FDS")?
        .trim()
        .parse()
        .map_err(|_| ListenError::Systemd("LISTEN_FDS is not a number".into()))?;
    if !(1..=64).contains(&count) {
        return Err(ListenError::Systemd(format!(
            "LISTEN_FDS is {count}: expected between 1 and 64 sockets"
        )));
    }
    let mut out = Vec::with_capacity(count as usize);
    for fd in LISTEN_FDS_START..LISTEN_FDS_START + count {
        // SAFETY: systemd passes these descriptors to this process (LISTEN_PID matched)
        // for it to own; nothing else in the process uses them.
        let std_listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
        let check = std_listener
            .local_addr()
            .and_then(|_| std_listener.set_nonblocking(true));
        if let Err(e) = check {
            return Err(ListenError::Systemd(format!(
                "descriptor {fd} is not a listening TCP socket ({e}); use ListenStream= with a port or address"
            )));
        }
        let l = TcpListener::from_std(std_listener)
            .map_err(|e| ListenError::Systemd(format!("descriptor {fd}: {e}")))?;
        out.push(l);
    }
    Ok(out)
}

#[cfg(not(unix))]
fn systemd_sockets() -> Result<Vec<TcpListener>, ListenError> {
    Err(ListenError::Systemd(
        "socket activation is only available on Linux".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binds_every_address() {
        let got = open(&Listen::Addresses(vec![
            "127.0.0.1:0".into(),
            "127.0.0.1:0".into(),
        ]))
        .await
        .unwrap();
        assert_eq!(got.len(), 2);
        assert_ne!(got[0].1.port(), got[1].1.port());
        assert!(matches!(
            open(&Listen::Addresses(vec![])).await,
            Err(ListenError::NoAddress)
        ));
    }
}
