//! The ends of a call's streams and futures on the `Invoke.Flow` RPC.
//!
//! Both sides of the RPC do the same two things. They send the ends their
//! own values carry as [`Frame`]s ([`send_ends`]): one task per end, each
//! feeding the RPC's outgoing messages, so a slow end holds back only the
//! RPC's shared flow-control window, never memory. They route the frames
//! that arrive into channels ([`Incoming`]), which become the ends of the
//! values on their side. When a reader goes away, the side that noticed
//! sends a frame with `dropped`, and the other side stops sending that
//! end, which tells its writer that nobody reads any more.

use crate::link::pipes::{End, WINDOW};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use weft_proto::v1::{EndKind, Frame};

/// The kind of each of `ends`, as the RPC says it.
pub(crate) fn kinds(ends: &[End]) -> Vec<i32> {
    ends.iter()
        .map(|end| match end {
            End::Stream(_) => EndKind::Stream as i32,
            End::Future(_) => EndKind::Future as i32,
        })
        .collect()
}

/// Where the frames of the ends that the other side sends go.
pub(crate) struct Incoming {
    ends: Vec<Into>,
}

/// The writing side of one incoming end.
enum Into {
    Stream(Option<mpsc::Sender<Bytes>>),
    Future(Option<oneshot::Sender<Bytes>>),
}

impl Incoming {
    /// Channels for ends of `kinds`: where their frames go, and the ends
    /// that the values on this side get.
    pub(crate) fn open(kinds: &[i32]) -> (Incoming, Vec<End>) {
        let mut into = Vec::with_capacity(kinds.len());
        let mut ends = Vec::with_capacity(kinds.len());
        for kind in kinds {
            if *kind == EndKind::Future as i32 {
                let (tx, rx) = oneshot::channel();
                into.push(Into::Future(Some(tx)));
                ends.push(End::Future(rx));
            } else {
                let (tx, rx) = mpsc::channel(WINDOW);
                into.push(Into::Stream(Some(tx)));
                ends.push(End::Stream(rx));
            }
        }
        (Incoming { ends: into }, ends)
    }

    /// Delivers `frame`; `true` when its end's reader is gone, which the
    /// other side must hear (a frame with `dropped`). Waits while the
    /// end's channel is full: that is the back-pressure.
    pub(crate) async fn deliver(&mut self, frame: Frame) -> bool {
        let Some(end) = self.ends.get_mut(frame.end as usize) else {
            return false;
        };
        match end {
            Into::Stream(slot) => {
                let Some(tx) = slot else { return false };
                let mut gone = false;
                if !frame.data.is_empty() {
                    gone = tx.send(frame.data).await.is_err();
                }
                if gone || frame.close {
                    *slot = None;
                }
                gone
            }
            Into::Future(slot) => {
                if frame.data.is_empty() && !frame.close {
                    return false;
                }
                match slot.take() {
                    // Closed without a value: the reader hears that the
                    // writer went away.
                    Some(tx) if !frame.data.is_empty() => tx.send(frame.data).is_err(),
                    _ => false,
                }
            }
        }
    }
}

/// Word from the other side that the reader of one of our ends went away.
pub(crate) struct Stops(Vec<Option<oneshot::Sender<()>>>);

impl Stops {
    /// Stops sending end `end`.
    pub(crate) fn stop(&mut self, end: u32) {
        if let Some(stop) = self.0.get_mut(end as usize).and_then(Option::take) {
            let _ = stop.send(());
        }
    }
}

/// Sends the items of `ends` to `out`, each frame wrapped by `wrap`, one
/// task per end; an end stops early once its [`Stops`] says so.
pub(crate) fn send_ends<M: Send + 'static>(
    ends: Vec<End>,
    out: mpsc::Sender<M>,
    wrap: fn(Frame) -> M,
) -> Stops {
    let mut stops = Vec::with_capacity(ends.len());
    for (index, end) in ends.into_iter().enumerate() {
        let (stop, mut stopped) = oneshot::channel();
        stops.push(Some(stop));
        let out = out.clone();
        let index = index as u32;
        let frame = move |data: Bytes, close: bool| {
            wrap(Frame {
                end: index,
                data,
                close,
                dropped: false,
            })
        };
        tokio::spawn(async move {
            match end {
                End::Stream(mut items) => loop {
                    let next = tokio::select! {
                        next = items.recv() => next,
                        _ = &mut stopped => return,
                    };
                    let closing = next.is_none();
                    let message = frame(next.unwrap_or_default(), closing);
                    if out.send(message).await.is_err() || closing {
                        return;
                    }
                },
                End::Future(value) => {
                    let value = tokio::select! {
                        value = value => value.unwrap_or_default(),
                        _ = stopped => return,
                    };
                    let _ = out.send(frame(value, true)).await;
                }
            }
        });
    }
    Stops(stops)
}

/// A frame that says the reader of end `end` went away.
pub(crate) fn dropped(end: u32) -> Frame {
    Frame {
        end,
        data: Bytes::new(),
        close: false,
        dropped: true,
    }
}
