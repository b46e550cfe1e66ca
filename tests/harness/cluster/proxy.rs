//! A Service's virtual address, as kube-proxy gives it: a port on this
//! machine whose every new connection goes to one of the Service's ready
//! pods, in turn. A connection stays with its pod, so when that pod goes
//! away, its connections break, as they do in a cluster.

use super::Shared;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

impl Shared {
    /// A local address that spreads connections over Service `name`'s
    /// ready pods, for as long as the cluster runs.
    pub fn service_proxy(&self, name: &str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a proxy port");
        let address = listener.local_addr().unwrap();
        let weak = self.me.clone();
        let name = name.to_string();
        let turn = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Some(shared) = weak.upgrade() else { return };
                let Some(target) = shared.endpoint(&name, turn.fetch_add(1, Ordering::Relaxed))
                else {
                    drop(client);
                    continue;
                };
                std::thread::spawn(move || forward(client, target));
            }
        });
        address
    }

    /// The `turn`th ready pod of Service `name`, at the Service's first port.
    fn endpoint(&self, name: &str, turn: usize) -> Option<SocketAddr> {
        let state = self.state.lock().unwrap();
        let spec = state.services.get(name)?.spec.clone()?;
        let selector: BTreeMap<String, String> = spec.selector.unwrap_or_default();
        let port = spec.ports?.into_iter().next()?;
        let pods: Vec<_> = state
            .pods
            .iter()
            .filter(|p| p.ready && selector.iter().all(|(k, v)| p.labels.get(k) == Some(v)))
            .collect();
        let pod = pods.get(turn % pods.len().max(1))?;
        let target = match &port.target_port {
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(named)) => {
                *pod.ports.get(named)?
            }
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => *n as u16,
            None => port.port as u16,
        };
        Some(SocketAddr::from((pod.ip, target)))
    }
}

/// Copies bytes both ways between `client` and `target` until either ends.
fn forward(client: TcpStream, target: SocketAddr) {
    let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(2)) else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(client_read), Ok(server_read)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || pump(client_read, server));
    pump(server_read, client);
    let _ = up.join();
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
