//! Where the HTTP server listens: one or more `host:port` addresses
//! (`--web.listen-address`, repeatable), or the sockets systemd hands over on socket
//! activation (`--web.systemd-socket`: `LISTEN_PID`/`LISTEN_FDS`, descriptors from 3).
//!
//! `:port` means every interface of both families, as Go's `:9100` does in every
//! Prometheus exporter: one IPv6 socket with `IPV6_V6ONLY` off, which also takes IPv4
//! connections (as IPv4-mapped addresses), or an IPv4 socket where the host has no IPv6.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::TcpListener;

/// How to get the listening sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// Bind each address as given on the command line (see [`parse_address`]; port 0
    /// picks a free port).
    Addresses(Vec<String>),
    /// Take the sockets passed by systemd socket activation.
    SystemdSocket,
}

/// One `--web.listen-address` value, understood.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// `:port`: every interface, IPv6 and IPv4.
    AllInterfaces(u16),
    /// `host:port` (a name, an IPv4 address or a bracketed IPv6 address), bound as
    /// it resolves.
    Host(String),
}

/// Read one `--web.listen-address` value without binding or resolving it; the error
/// says what is wrong and what is expected.
pub fn parse_address(given: &str) -> Result<Address, String> {
    let Some((host, port)) = given.rsplit_once(':') else {
        return Err("expected host:port, or :port for every interface".into());
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("the port {port:?} is not a number from 0 to 65535"))?;
    if host.is_empty() {
        return Ok(Address::AllInterfaces(port));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err("an IPv6 address needs brackets, e.g. [::1]:9977".into());
    }
    Ok(Address::Host(given.to_string()))
}

/// Why the sockets could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error("--web.listen-address={address}: {problem}")]
    Invalid { address: String, problem: String },
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
                out.push(bind(address).await?);
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

async fn bind(address: &str) -> Result<TcpListener, ListenError> {
    let parsed = parse_address(address).map_err(|problem| ListenError::Invalid {
        address: address.to_string(),
        problem,
    })?;
    let bound = match parsed {
        Address::AllInterfaces(port) => bind_all_interfaces(port),
        Address::Host(host_port) => TcpListener::bind(host_port).await,
    };
    bound.map_err(|source| ListenError::Bind {
        address: address.to_string(),
        source,
    })
}

/// Every interface on `port`: a dual-stack IPv6 socket, or IPv4 only where the host
/// cannot make one (no IPv6 in the kernel, IPv6 turned off, no dual-stack sockets).
/// A port in use or not allowed is an error either way.
fn bind_all_interfaces(port: u16) -> std::io::Result<TcpListener> {
    use std::io::ErrorKind;
    match bind_socket(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)), true) {
        Ok(l) => Ok(l),
        Err(e) if matches!(e.kind(), ErrorKind::AddrInUse | ErrorKind::PermissionDenied) => Err(e),
        Err(e) => {
            tracing::info!(port, error = %e, "no IPv6 socket on this host: listening on IPv4 only");
            bind_socket(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)), false)
        }
    }
}

/// A listening socket on `addr`, set up as tokio's `TcpListener::bind` does
/// (`SO_REUSEADDR` on Unix, a backlog of 1024); `dual_stack` turns `IPV6_V6ONLY` off.
fn bind_socket(addr: SocketAddr, dual_stack: bool) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if dual_stack {
        socket.set_only_v6(false)?;
    }
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
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

    #[test]
    fn addresses_parse() {
        assert_eq!(parse_address(":9977"), Ok(Address::AllInterfaces(9977)));
        assert_eq!(
            parse_address("[::1]:0"),
            Ok(Address::Host("[::1]:0".into()))
        );
        assert_eq!(
            parse_address("localhost:80"),
            Ok(Address::Host("localhost:80".into()))
        );
        for bad in ["9977", ":http", ":70000", "::1:9977", "host:"] {
            assert!(parse_address(bad).is_err(), "{bad}");
        }
    }

    /// Whether this host can listen on the IPv6 loopback at all.
    async fn host_has_ipv6() -> bool {
        TcpListener::bind("[::1]:0").await.is_ok()
    }

    #[tokio::test]
    async fn port_only_listens_on_ipv6_and_ipv4() {
        let got = open(&Listen::Addresses(vec![":0".into()])).await.unwrap();
        let (listener, addr) = &got[0];
        let port = addr.port();
        let mut targets = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, port))];
        if host_has_ipv6().await {
            assert!(addr.is_ipv6(), "{addr}");
            targets.push(SocketAddr::from((Ipv6Addr::LOCALHOST, port)));
        } else {
            // The fallback where the host has no IPv6: IPv4 still works.
            assert!(addr.is_ipv4(), "{addr}");
        }
        for target in targets {
            let (client, accepted) =
                tokio::join!(tokio::net::TcpStream::connect(target), listener.accept());
            client.unwrap_or_else(|e| panic!("connect to {target}: {e}"));
            accepted.unwrap();
        }
        // An explicit IPv4 address stays IPv4 only.
        let v4 = open(&Listen::Addresses(vec!["127.0.0.1:0".into()]))
            .await
            .unwrap();
        assert!(v4[0].1.is_ipv4());
    }

    #[tokio::test]
    async fn a_port_in_use_is_an_error_on_both_families() {
        let first = open(&Listen::Addresses(vec![":0".into()])).await.unwrap();
        let port = first[0].1.port();
        let again = open(&Listen::Addresses(vec![format!(":{port}")])).await;
        assert!(
            matches!(&again, Err(ListenError::Bind { source, .. }) if source.kind() == std::io::ErrorKind::AddrInUse),
            "{again:?}"
        );
        let bad = open(&Listen::Addresses(vec![":x".into()])).await;
        assert!(matches!(bad, Err(ListenError::Invalid { .. })), "{bad:?}");
    }
}
