//! Swarm events: gossip (validated by the node before it is forwarded),
//! sync requests and responses, connections, pings and identify.

use std::{io, sync::atomic::Ordering};

use libp2p::{
    gossipsub::{self, MessageAcceptance},
    identify, ping, request_response,
    swarm::SwarmEvent,
    PeerId,
};
use tokio::time::Instant;
use tracing::{debug, info, trace, warn};

use super::{BehaviourEvent, Service};
use crate::{codec::InboundRequest, lock, P2pEvent, ResponseToken};

pub(super) fn is_invalid_data(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidData
}

impl Service {
    pub(super) fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => self.on_gossipsub(event),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => self.on_sync(event),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(event)) => self.on_identify(event),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(event)) => self.on_ping(event),
            SwarmEvent::Behaviour(BehaviourEvent::BlockList(never))
            | SwarmEvent::Behaviour(BehaviourEvent::Limits(never)) => match never {},
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                num_established,
                endpoint,
                ..
            } => {
                self.keep_one_connection(peer_id, connection_id, endpoint.is_dialer());
                debug!(peer = %peer_id, addr = %endpoint.get_remote_address(), "connection established");
                if let Some(c) = self.configured.get_mut(&peer_id) {
                    c.dialing = false;
                    c.connected_since.get_or_insert_with(Instant::now);
                }
                if num_established.get() == 1 {
                    if self.flood {
                        self.swarm.behaviour_mut().gossipsub.add_explicit_peer(&peer_id);
                    }
                    self.set_connected(peer_id, true);
                    self.emit(P2pEvent::PeerConnected(peer_id));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                cause,
                ..
            } => {
                self.connection_closed(peer_id, connection_id);
                debug!(peer = %peer_id, ?cause, "connection closed");
                if num_established == 0 {
                    if self.flood {
                        self.swarm.behaviour_mut().gossipsub.remove_explicit_peer(&peer_id);
                    }
                    self.set_connected(peer_id, false);
                    self.schedule_redial(peer_id);
                    self.emit(P2pEvent::PeerDisconnected(peer_id));
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                debug!(peer = ?peer_id, %error, "outgoing connection failed");
                if let Some(peer) = peer_id {
                    if !self.swarm.is_connected(&peer) {
                        self.schedule_redial(peer);
                    }
                }
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr, error, ..
            } => {
                debug!(from = %send_back_addr, %error, "incoming connection failed");
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "listening");
                lock(&self.shared.listen_addrs).push(address);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                lock(&self.shared.listen_addrs).retain(|a| a != &address);
            }
            SwarmEvent::ListenerClosed { reason, .. } => {
                warn!(?reason, "listener closed");
            }
            SwarmEvent::ListenerError { error, .. } => {
                warn!(%error, "listener error");
            }
            _ => {}
        }
    }

    pub(super) fn set_connected(&mut self, peer: PeerId, connected: bool) {
        let mut peers = lock(&self.shared.peers);
        if connected {
            peers.insert(peer);
        } else {
            peers.remove(&peer);
        }
        self.shared.connected.store(peers.len(), Ordering::Relaxed);
    }

    pub(super) fn on_gossipsub(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                let Some(topic) = self.topics.get(&message.topic).copied() else {
                    self.report(&message_id, &propagation_source, MessageAcceptance::Ignore);
                    return;
                };
                if message.data.len() > self.max_message_bytes {
                    debug!(peer = %propagation_source, size = message.data.len(), "oversized gossip message");
                    self.report(&message_id, &propagation_source, MessageAcceptance::Reject);
                    self.strike(propagation_source, "oversized gossip message");
                    return;
                }
                self.emit_gossip(topic, message.data, propagation_source, message_id);
            }
            gossipsub::Event::Subscribed { peer_id, topic } => {
                debug!(peer = %peer_id, %topic, "peer subscribed");
            }
            gossipsub::Event::Unsubscribed { peer_id, topic } => {
                debug!(peer = %peer_id, %topic, "peer unsubscribed");
            }
            gossipsub::Event::GossipsubNotSupported { peer_id } => {
                debug!(peer = %peer_id, "peer does not support gossipsub");
            }
            gossipsub::Event::SlowPeer {
                peer_id,
                failed_messages,
            } => {
                debug!(peer = %peer_id, ?failed_messages, "slow gossip peer");
            }
        }
    }

    pub(super) fn on_sync(&mut self, event: request_response::Event<InboundRequest, bizra_proto::SyncResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    if self.banned.contains_key(&peer) {
                        return;
                    }
                    let request = match request {
                        InboundRequest::Request(request) => request,
                        InboundRequest::Malformed(error) => {
                            debug!(%peer, error, "malformed sync request");
                            self.strike(peer, "malformed sync request");
                            let response = bizra_proto::SyncResponse {
                                resp: Some(bizra_proto::sync_response::Resp::Error(error)),
                            };
                            let _ = self.swarm.behaviour_mut().sync.send_response(channel, response);
                            return;
                        }
                    };
                    let token = self.next_token;
                    self.next_token += 1;
                    self.pending_in.insert(token, channel);
                    let event = P2pEvent::SyncRequest {
                        peer,
                        request,
                        channel: ResponseToken(token),
                    };
                    match &self.sync_requests {
                        None => self.emit(event),
                        Some(tx) => {
                            if tx.try_send(event).is_err() {
                                // Busy (or the server is gone): say so now
                                // rather than hold the stream open.
                                if let Some(channel) = self.pending_in.remove(&token) {
                                    let response = bizra_proto::SyncResponse {
                                        resp: Some(bizra_proto::sync_response::Resp::Error("busy".into())),
                                    };
                                    let _ = self.swarm.behaviour_mut().sync.send_response(channel, response);
                                }
                            }
                        }
                    }
                }
                request_response::Message::Response { request_id, response } => {
                    if let Some(request_id) = self.pending_out.remove(&request_id) {
                        self.emit(P2pEvent::SyncResponse {
                            peer,
                            request_id,
                            response,
                        });
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                debug!(%peer, %error, "sync request failed");
                if matches!(&error, request_response::OutboundFailure::Io(e) if is_invalid_data(e)) {
                    self.strike(peer, "invalid sync response");
                }
                if let Some(request_id) = self.pending_out.remove(&request_id) {
                    self.emit(P2pEvent::SyncFailure {
                        peer,
                        request_id,
                        error: error.to_string(),
                    });
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "inbound sync request failed");
                if matches!(&error, request_response::InboundFailure::Io(e) if is_invalid_data(e)) {
                    self.strike(peer, "invalid sync request");
                }
            }
            request_response::Event::ResponseSent { peer, .. } => {
                trace!(%peer, "sync response sent");
            }
        }
    }

    /// Closes a connection whose liveness ping failed (not one whose peer
    /// does not speak ping); a configured peer is then redialled, with its
    /// name resolved again.
    pub(super) fn on_ping(&mut self, event: ping::Event) {
        match event.result {
            Ok(_) | Err(ping::Failure::Unsupported) => {}
            Err(e) => {
                debug!(peer = %event.peer, error = %e, "ping failed; closing the connection");
                self.swarm.close_connection(event.connection);
            }
        }
    }

    pub(super) fn on_identify(&mut self, event: identify::Event) {
        if let identify::Event::Received { peer_id, info, .. } = event {
            if info.protocol_version != self.protocol_version {
                warn!(
                    peer = %peer_id,
                    theirs = info.protocol_version,
                    ours = self.protocol_version,
                    "peer is on another chain or protocol version, disconnecting"
                );
                let _ = self.swarm.disconnect_peer_id(peer_id);
            } else {
                trace!(peer = %peer_id, agent = info.agent_version, "identified peer");
            }
        }
    }
}
