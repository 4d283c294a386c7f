//! Clients that hold SMTP sessions without using them, from many loopback
//! addresses: silent ones, and ones trickling a byte at a time that never finish a
//! command. Each reconnects when it is cut off, as an attacker would.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How the flooding clients behave once connected.
#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    /// Read the greeting, then say nothing.
    Silent,
    /// Send one byte every interval, never a whole line.
    Trickle(Duration),
}

/// The running flood.
pub struct Flood {
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Flood {
    /// Starts `clients` clients against `server`, spread over `addresses` source
    /// addresses 127.0.1.1, 127.0.1.2, …
    pub fn start(server: SocketAddr, clients: usize, addresses: u8, behaviour: Behaviour) -> Self {
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        for i in 0..clients {
            let last = u8::try_from(i % usize::from(addresses.max(1))).unwrap_or(0) + 1;
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, 1, last));
            let stop = stop.clone();
            tasks.spawn(async move {
                while !stop.is_cancelled() {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = hold(server, source, behaviour) => {}
                    }
                    // Cut off or refused: come back at once, as an attacker would.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
        }
        Self { stop, tasks }
    }

    /// Stops every client and closes their connections.
    pub async fn stop(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// One connection held until the server closes it.
async fn hold(server: SocketAddr, source: IpAddr, behaviour: Behaviour) -> std::io::Result<()> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let mut stream = socket.connect(server).await?;
    let mut buf = [0u8; 512];
    let tick = match behaviour {
        Behaviour::Silent => Duration::from_secs(3600),
        Behaviour::Trickle(every) => every,
    };
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => {
                if read? == 0 {
                    return Ok(());
                }
            }
            _ = tokio::time::sleep(tick) => {
                if matches!(behaviour, Behaviour::Trickle(_)) {
                    stream.write_all(b"N").await?;
                }
            }
        }
    }
}
