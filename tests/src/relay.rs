//! A loopback relay between the bridge and the bank, for the lost-answer flows.

// Test support: a panic is how a broken relay reports, as in the tests that use it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::mpsc;

/// A loopback relay between the bridge and the bank that, once, loses a transfer's
/// confirmation on the way: [`Cut::Request`] drops the `POST .../confirm` before the bank sees
/// it; [`Cut::Answer`] passes it to the bank, waits for the first byte of the bank's answer
/// (the bank has committed by then) and cuts both connections instead of passing the answer
/// on, so the bank executed the transfer and the bridge never hears it. Afterwards it relays
/// everything.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    Request,
    Answer,
    /// Relay everything (to count the bridge's connections).
    Nothing,
}

pub struct Relay {
    pub port: u16,
    /// One message per answer eaten.
    pub eaten: mpsc::Receiver<()>,
    /// Connections accepted from the bridge so far.
    pub accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Relay {
    pub fn start(listener: std::net::TcpListener, bank_port: u16, cut: Cut) -> Relay {
        use std::io::Read;
        use std::net::{Shutdown, TcpStream};
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(AtomicBool::new(cut != Cut::Nothing));
        let (eaten_tx, eaten) = mpsc::channel();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                counter.fetch_add(1, Ordering::SeqCst);
                // The bank may be down (restarted by the test): drop the client, as a dead bank would.
                let Ok(server) = TcpStream::connect(("127.0.0.1", bank_port)) else { continue };
                let confirm_sent = Arc::new(AtomicBool::new(false));
                let (mut c_in, mut s_out, sent) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap(), confirm_sent.clone());
                let (armed_up, eaten_up) = (armed.clone(), eaten_tx.clone());
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match c_in.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let chunk = &buf[..n];
                        if armed_up.load(Ordering::SeqCst)
                            && chunk.starts_with(b"POST ")
                            && chunk.windows(9).any(|w| w == b"/confirm ")
                        {
                            if cut == Cut::Request {
                                if armed_up.swap(false, Ordering::SeqCst) {
                                    let _ = c_in.shutdown(Shutdown::Both);
                                    let _ = s_out.shutdown(Shutdown::Both);
                                    let _ = eaten_up.send(());
                                    return;
                                }
                            } else {
                                sent.store(true, Ordering::SeqCst);
                            }
                        }
                        if s_out.write_all(chunk).is_err() {
                            break;
                        }
                    }
                    let _ = s_out.shutdown(Shutdown::Write);
                });
                let (mut s_in, mut c_out, armed_down, eaten_tx) = (server, client, armed.clone(), eaten_tx.clone());
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match s_in.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if confirm_sent.load(Ordering::SeqCst) && armed_down.swap(false, Ordering::SeqCst) {
                            let _ = c_out.shutdown(Shutdown::Both);
                            let _ = s_in.shutdown(Shutdown::Both);
                            let _ = eaten_tx.send(());
                            return;
                        }
                        if c_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = c_out.shutdown(Shutdown::Write);
                });
            }
        });
        Relay { port, eaten, accepted }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}
