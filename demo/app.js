/*
 * Signal Manager demo: a WebRTC call between the members of one room, with
 * all signaling through the server via the JavaScript SDK.
 *
 * Flow (p2p mode, DECISIONS §6):
 *   CONNECT, REGISTER, then ROOM_CREATE; on 409 (the room exists) ROOM_JOIN.
 *   A joiner calls every member already in the room: it creates the
 *   RTCPeerConnection and the "chat" data channel, and sends the offer with
 *   SIGNAL.  Members answer; both sides trickle ICE candidates with SIGNAL.
 *   Only joiners make offers, so two peers never offer to each other at once.
 *   Media: getUserMedia audio+video when available and wanted, otherwise a
 *   data-channel-only connection (chat).  No STUN server unless one is given:
 *   host candidates work on loopback and LAN.
 *
 * window.demo is a small hook for automated browser tests (see the bottom).
 * URL parameters prefill the form: ?room=&identity=1|2|custom&client=&token=
 * &media=0|1&stun=&server=&autojoin=1
 */
import { SignalManagerClient, SignalManagerError } from './sdk/signal-manager.js';

const $ = (id) => document.getElementById(id);

const CREDENTIALS = {
    1: { clientId: 'test_client_1', token: 'test_token_1' },
    2: { clientId: 'test_client_2', token: 'test_token_2' },
};

const app = {
    client: null,
    roomId: null,
    me: null,
    role: null,
    localStream: null,
    mediaMode: null,
    iceServers: [],
    wantMedia: true,
    peers: new Map(),          /* client_id -> peer record */
    participants: new Set(),
    phase: 'idle',
    error: null,
    messages: [],
    lastMessage: null,
    logLines: [],
};

/* ------------------------------------------------------------------ UI -- */

function log(text, level = 'info') {
    const t = new Date();
    const stamp = `${t.toTimeString().slice(0, 8)}.${String(t.getMilliseconds()).padStart(3, '0')}`;
    const line = `${stamp} ${level === 'info' ? '' : `[${level}] `}${text}`;
    app.logLines.push(line);
    if (app.logLines.length > 1000)
        app.logLines.shift();
    const pre = $('log');
    const span = document.createElement('span');
    span.className = `log-${level}`;
    span.textContent = `${line}\n`;
    pre.appendChild(span);
    while (pre.childNodes.length > 500)
        pre.removeChild(pre.firstChild);
    pre.scrollTop = pre.scrollHeight;
}

function setPhase(phase, error = null) {
    app.phase = phase;
    app.error = error;
    const el = $('phase');
    el.textContent = error ? `${phase}: ${error}` : phase;
    el.dataset.phase = phase;
    const busy = phase !== 'idle' && phase !== 'left' && phase !== 'error';
    $('join-btn').disabled = busy;
    $('leave-btn').disabled = !busy;
    for (const id of ['server-url', 'identity', 'client-id', 'auth-token', 'room-id', 'use-media', 'stun-url'])
        $(id).disabled = busy;
    if (!busy)
        applyIdentity(false);
}

/* 'connected' once any peer's data channel is open, else 'calling' while a
 * peer connection exists, else 'waiting' while in the room. */
function updatePhase() {
    if (!app.roomId || !['waiting', 'calling', 'connected'].includes(app.phase))
        return;
    const peers = [...app.peers.values()];
    let phase = 'waiting';
    if (peers.some((p) => p.dc && p.dc.readyState === 'open'))
        phase = 'connected';
    else if (peers.length > 0)
        phase = 'calling';
    if (phase !== app.phase)
        setPhase(phase);
    const open = phase === 'connected';
    $('chat-input').disabled = !open;
    $('chat-send').disabled = !open;
}

function renderParticipants() {
    const ul = $('participants');
    ul.textContent = '';
    if (!app.roomId) {
        const li = document.createElement('li');
        li.className = 'muted';
        li.textContent = 'not in a room';
        ul.appendChild(li);
        return;
    }
    const ids = [app.me, ...[...app.participants].filter((id) => id !== app.me).sort()];
    for (const id of ids) {
        const li = document.createElement('li');
        const peer = app.peers.get(id);
        let state = '';
        if (id === app.me)
            state = 'you';
        else if (peer)
            state = `${peer.pc.connectionState}${peer.dc ? `, chat ${peer.dc.readyState}` : ''}`;
        else
            state = 'no call yet';
        li.innerHTML = '<span class="pid"></span> <span class="muted"></span>';
        li.firstChild.textContent = id;
        li.lastChild.textContent = `(${state})`;
        ul.appendChild(li);
    }
}

function addMessage(from, text) {
    const entry = { from, text, at: Date.now() };
    app.messages.push(entry);
    if (from !== app.me)
        app.lastMessage = entry;
    const li = document.createElement('li');
    li.className = from === app.me ? 'mine' : 'theirs';
    const who = document.createElement('b');
    who.textContent = `${from}: `;
    li.append(who, document.createTextNode(text));
    $('messages').appendChild(li);
    $('messages').scrollTop = $('messages').scrollHeight;
}

function applyIdentity(clearCustom) {
    const sel = $('identity').value;
    const cred = CREDENTIALS[sel];
    const custom = !cred;
    $('client-id').readOnly = !custom;
    $('auth-token').readOnly = !custom;
    if (cred) {
        $('client-id').value = cred.clientId;
        $('auth-token').value = cred.token;
    } else if (clearCustom) {
        $('client-id').value = '';
        $('auth-token').value = '';
    }
}

function defaultServerUrl() {
    if (location.protocol === 'http:' || location.protocol === 'https:')
        return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`;
    return 'ws://127.0.0.1:8080/';
}

/* -------------------------------------------------------------- WebRTC -- */

function peerTile(peer) {
    if (peer.tile)
        return peer.tile;
    const fig = document.createElement('figure');
    fig.className = 'tile';
    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    const cap = document.createElement('figcaption');
    cap.textContent = peer.id;
    fig.append(video, cap);
    $('videos').appendChild(fig);
    peer.tile = fig;
    peer.video = video;
    return fig;
}

function createPeer(id, initiator) {
    const pc = new RTCPeerConnection({ iceServers: app.iceServers });
    const peer = { id, pc, dc: null, initiator, tile: null, video: null, stream: null };
    app.peers.set(id, peer);

    pc.onicecandidate = (ev) => {
        if (!ev.candidate)
            return; /* end of candidates: nothing to send */
        signal(id, 'candidate', ev.candidate.toJSON());
    };
    pc.onconnectionstatechange = () => {
        log(`peer ${id}: connection ${pc.connectionState}`);
        if (pc.connectionState === 'failed')
            log(`peer ${id}: connection failed (no usable ICE candidate pair; try a STUN server?)`, 'warn');
        renderParticipants();
        updatePhase();
    };
    pc.oniceconnectionstatechange = () => log(`peer ${id}: ICE ${pc.iceConnectionState}`);
    pc.ontrack = (ev) => {
        peerTile(peer);
        if (!peer.stream) {
            peer.stream = ev.streams[0] ?? new MediaStream();
            peer.video.srcObject = peer.stream;
        }
        if (!peer.stream.getTracks().includes(ev.track))
            peer.stream.addTrack(ev.track);
        log(`peer ${id}: receiving ${ev.track.kind}`);
    };
    pc.ondatachannel = (ev) => attachChannel(peer, ev.channel);
    renderParticipants();
    updatePhase();
    return peer;
}

function attachChannel(peer, dc) {
    peer.dc = dc;
    dc.onopen = () => {
        log(`peer ${peer.id}: data channel open`);
        renderParticipants();
        updatePhase();
    };
    dc.onclose = () => {
        log(`peer ${peer.id}: data channel closed`);
        renderParticipants();
        updatePhase();
    };
    dc.onmessage = (ev) => {
        const text = typeof ev.data === 'string' ? ev.data : `[${ev.data.byteLength ?? ev.data.size} bytes]`;
        addMessage(peer.id, text);
    };
}

function addLocalTracks(pc) {
    if (!app.localStream)
        return;
    const sending = new Set(pc.getSenders().map((s) => s.track).filter(Boolean));
    for (const track of app.localStream.getTracks()) {
        if (!sending.has(track))
            pc.addTrack(track, app.localStream);
    }
}

/* Joiner side: call a member. */
async function callPeer(id) {
    if (app.peers.has(id))
        return;
    log(`calling ${id}`);
    const peer = createPeer(id, true);
    const { pc } = peer;
    attachChannel(peer, pc.createDataChannel('chat'));
    addLocalTracks(pc);
    if (!app.localStream && app.wantMedia) {
        /* no camera here, but receive the other side's */
        pc.addTransceiver('audio', { direction: 'recvonly' });
        pc.addTransceiver('video', { direction: 'recvonly' });
    }
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    await signal(id, 'offer', { type: pc.localDescription.type, sdp: pc.localDescription.sdp });
}

async function onOffer(from, desc) {
    let peer = app.peers.get(from);
    if (peer && peer.initiator) {
        log(`ignoring an offer from ${from}: a call to it is already being set up`, 'warn');
        return;
    }
    if (!peer)
        peer = createPeer(from, false);
    const { pc } = peer;
    await pc.setRemoteDescription(desc);
    addLocalTracks(pc);
    await flushCandidates(peer);
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    await signal(from, 'answer', { type: pc.localDescription.type, sdp: pc.localDescription.sdp });
    log(`answered ${from}`);
}

async function onAnswer(from, desc) {
    const peer = app.peers.get(from);
    if (!peer || peer.pc.signalingState !== 'have-local-offer') {
        log(`unexpected answer from ${from}`, 'warn');
        return;
    }
    await peer.pc.setRemoteDescription(desc);
    await flushCandidates(peer);
}

/* client_id -> ICE candidates that arrived before the offer/answer was applied
 * (or before the peer existed); flushCandidates() adds them. */
const earlyCandidates = new Map();

async function onCandidate(from, cand) {
    const peer = app.peers.get(from);
    if (!peer || !peer.pc.remoteDescription) {
        /* the offer/answer has not been applied yet: keep it */
        if (!earlyCandidates.has(from))
            earlyCandidates.set(from, []);
        earlyCandidates.get(from).push(cand);
        return;
    }
    try {
        await peer.pc.addIceCandidate(cand);
    } catch (err) {
        log(`peer ${from}: bad ICE candidate: ${err.message}`, 'warn');
    }
}

async function flushCandidates(peer) {
    const list = earlyCandidates.get(peer.id) ?? [];
    earlyCandidates.delete(peer.id);
    for (const c of list) {
        try {
            await peer.pc.addIceCandidate(c);
        } catch (err) {
            log(`peer ${peer.id}: bad ICE candidate: ${err.message}`, 'warn');
        }
    }
}

function closePeer(id, why) {
    const peer = app.peers.get(id);
    earlyCandidates.delete(id);
    if (!peer)
        return;
    app.peers.delete(id);
    try {
        peer.dc?.close();
        peer.pc.close();
    } catch {
        /* already closed */
    }
    peer.tile?.remove();
    log(`peer ${id}: call ended (${why})`);
    renderParticipants();
    updatePhase();
}

/* ----------------------------------------------------------- signaling -- */

function signal(to, type, data) {
    if (!app.client)
        return Promise.resolve();
    return app.client.signal(to, type, data, { roomId: app.roomId }).catch((err) => {
        log(`SIGNAL ${type} to ${to} not sent: ${err.message}`, 'error');
    });
}

async function onSignal(s) {
    if (s.binary) {
        log(`binary signal from ${s.from} (${s.bytes.length} bytes)`);
        return;
    }
    if (s.roomId && s.roomId !== app.roomId)
        return;
    try {
        switch (s.type) {
        case 'offer':
            log(`offer from ${s.from}`);
            await onOffer(s.from, s.data);
            break;
        case 'answer':
            log(`answer from ${s.from}`);
            await onAnswer(s.from, s.data);
            break;
        case 'candidate':
            await onCandidate(s.from, s.data);
            break;
        case 'bye':
            closePeer(s.from, 'hung up');
            break;
        default:
            log(`signal "${s.type}" from ${s.from}: ${JSON.stringify(s.data)}`);
        }
    } catch (err) {
        log(`handling ${s.type} from ${s.from} failed: ${err.message}`, 'error');
    }
}

function onRoomEvent(ev) {
    if (ev.room_id && ev.room_id !== app.roomId)
        return;
    switch (ev.event) {
    case 'participant_joined':
        app.participants.add(ev.client_id);
        log(`${ev.client_id} joined the room; waiting for its call`);
        break;
    case 'participant_left':
        app.participants.delete(ev.client_id);
        log(`${ev.client_id} left the room`);
        closePeer(ev.client_id, 'left the room');
        break;
    case 'room_closed':
        log('the room was closed by the server', 'warn');
        for (const id of [...app.peers.keys()])
            closePeer(id, 'room closed');
        app.participants.clear();
        break;
    default:
        log(`room event ${JSON.stringify(ev)}`);
    }
    renderParticipants();
}

function wireClient(client) {
    client.on('state', ({ state }) => {
        $('sig-state').textContent = state;
        $('sig-state').dataset.state = state;
    });
    client.on('signal', onSignal);
    client.on('roomEvent', onRoomEvent);
    client.on('error', (err) => {
        const ctx = err.context?.kind === 'signal' ? ` (SIGNAL ${err.context.type} to ${err.context.targetClientId})` : '';
        log(`server error ${err.errorCode}: ${err.message}${ctx}`, 'error');
    });
    client.on('disconnect', (ev) => {
        if (ev.source === 'notice') {
            log(`server notice: ${ev.reason} (code ${ev.code}, reconnect ${ev.reconnect})`, 'warn');
            return;
        }
        log(`signaling connection closed (code ${ev.code}${ev.reason ? `, ${ev.reason}` : ''})` +
            `${ev.willReconnect ? ', reconnecting' : ''}`, ev.requested ? 'info' : 'warn');
        if (ev.final && !ev.requested) {
            cleanupCall();
            if (app.client === client)
                app.client = null;
            setPhase('error', 'signaling connection lost');
        }
    });
    client.on('reconnecting', (ev) => log(`reconnect attempt ${ev.attempt}/${ev.maxAttempts} in ${ev.delay} ms`, 'warn'));
    client.on('reconnected', (ev) => {
        log(`reconnected: ${ev.resumed ? 'session resumed' : 'new session, registered again'}` +
            `${ev.failedRooms.length ? `; could not rejoin ${ev.failedRooms.map((f) => f.roomId).join(', ')}` : ''}`);
    });
}

/* ------------------------------------------------------------ join/leave -- */

async function getMedia() {
    app.localStream = null;
    app.mediaMode = 'datachannel-only';
    if (!app.wantMedia) {
        log('media off: data channel only');
    } else if (!navigator.mediaDevices?.getUserMedia) {
        log('getUserMedia not available (needs https or localhost): data channel only', 'warn');
    } else {
        try {
            app.localStream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
            app.mediaMode = 'audio+video';
        } catch (err) {
            try {
                app.localStream = await navigator.mediaDevices.getUserMedia({ audio: true });
                app.mediaMode = 'audio';
                log(`no camera (${err.name}): audio only`, 'warn');
            } catch (err2) {
                log(`no camera or microphone (${err2.name}): data channel only`, 'warn');
            }
        }
    }
    if (app.localStream) {
        $('local-video').srcObject = app.localStream;
        $('local-tile').hidden = false;
    }
    $('media-mode').textContent = app.mediaMode;
}

async function join(opts = {}) {
    if (['connecting', 'waiting', 'calling', 'connected'].includes(app.phase))
        throw new Error(`already ${app.phase}`);
    if (opts.room !== undefined)
        $('room-id').value = opts.room;
    if (opts.identity !== undefined) {
        $('identity').value = String(opts.identity);
        applyIdentity(true);
    }
    if (opts.clientId !== undefined)
        $('client-id').value = opts.clientId;
    if (opts.token !== undefined)
        $('auth-token').value = opts.token;
    if (opts.media !== undefined)
        $('use-media').checked = Boolean(opts.media);
    if (opts.stun !== undefined)
        $('stun-url').value = opts.stun;
    if (opts.server !== undefined)
        $('server-url').value = opts.server;

    const url = $('server-url').value.trim();
    const clientId = $('client-id').value.trim();
    const token = $('auth-token').value;
    const roomId = $('room-id').value.trim();
    const stun = $('stun-url').value.trim();
    app.wantMedia = $('use-media').checked;
    app.iceServers = stun ? [{ urls: stun }] : [];
    app.me = clientId;
    app.messages = [];
    app.lastMessage = null;
    $('messages').textContent = '';
    setPhase('connecting');

    try {
        if (typeof RTCPeerConnection === 'undefined')
            throw new Error('this browser has no WebRTC (RTCPeerConnection)');
        await getMedia();
        const client = new SignalManagerClient({ url, clientId, authToken: token, metadata: { app: 'demo' } });
        app.client = client;
        wireClient(client);
        log(`connecting to ${url} as ${clientId}`);
        const ack = await client.connect();
        log(`connected, session ${ack.session_id}, heartbeat every ${ack.heartbeat_interval} s`);
        await client.register({ metadata: { app: 'demo', media: app.mediaMode } });
        log('registered');

        let participants = [];
        try {
            await client.createRoom({ roomId, metadata: { room_name: roomId, max_participants: 4 } });
            app.role = 'creator';
            log(`created room ${roomId}; waiting for someone to join`);
        } catch (err) {
            if (!(err instanceof SignalManagerError) || err.errorCode !== 409)
                throw err;
            const ack2 = await client.joinRoom(roomId, { metadata: { app: 'demo' } });
            app.role = 'joiner';
            participants = (ack2.participants ?? []).filter((id) => id !== clientId);
            log(`joined room ${roomId}; members: ${participants.join(', ') || 'none'}`);
        }
        app.roomId = roomId;
        app.participants = new Set(participants);
        $('role').textContent = app.role;
        setPhase('waiting');
        renderParticipants();
        for (const id of participants) {
            callPeer(id).catch((err) => log(`call to ${id} failed: ${err.message}`, 'error'));
        }
        updatePhase();
    } catch (err) {
        const hint = err.errorCode === 409 ? ' (is this client id already in use in another window?)'
            : err.errorCode === 401 ? ' (check the client id and token)' : '';
        log(`join failed: ${err.errorCode ? `${err.errorCode} ` : ''}${err.message}${hint}`, 'error');
        await teardown();
        setPhase('error', err.message);
        throw err;
    }
}

function cleanupCall() {
    for (const id of [...app.peers.keys()])
        closePeer(id, 'leaving');
    earlyCandidates.clear();
    app.participants.clear();
    app.roomId = null;
    app.role = null;
    $('role').textContent = '–';
    if (app.localStream) {
        for (const t of app.localStream.getTracks())
            t.stop();
        app.localStream = null;
    }
    $('local-video').srcObject = null;
    $('local-tile').hidden = true;
    $('chat-input').disabled = true;
    $('chat-send').disabled = true;
    renderParticipants();
}

async function teardown() {
    const client = app.client;
    const roomId = app.roomId;
    const peerIds = [...app.peers.keys()];
    if (client && roomId) {
        for (const id of peerIds)
            await client.signal(id, 'bye', null, { roomId }).catch(() => {});
        await client.leaveRoom(roomId).catch(() => {});
    }
    cleanupCall();
    app.client = null;
    if (client)
        await client.disconnect('demo left').catch(() => {});
}

async function leave() {
    log('leaving');
    await teardown();
    setPhase('left');
}

function send(text) {
    const value = String(text);
    let n = 0;
    for (const peer of app.peers.values()) {
        if (peer.dc && peer.dc.readyState === 'open') {
            peer.dc.send(value);
            n++;
        }
    }
    if (n > 0)
        addMessage(app.me, value);
    else
        log('nobody to send to: no open data channel', 'warn');
    return n;
}

/* ------------------------------------------------------------- startup -- */

function init() {
    const q = new URLSearchParams(location.search);
    $('server-url').value = q.get('server') ?? defaultServerUrl();
    const identity = q.get('identity') ?? (q.has('client') ? 'custom' : '1');
    $('identity').value = ['1', '2', 'custom'].includes(identity) ? identity : '1';
    applyIdentity(true);
    if (q.has('client'))
        $('client-id').value = q.get('client');
    if (q.has('token'))
        $('auth-token').value = q.get('token');
    if (q.has('room'))
        $('room-id').value = q.get('room');
    if (q.has('media'))
        $('use-media').checked = q.get('media') !== '0';
    if (q.has('stun'))
        $('stun-url').value = q.get('stun');

    $('identity').addEventListener('change', () => applyIdentity(true));
    $('join-form').addEventListener('submit', (ev) => {
        ev.preventDefault();
        join().catch(() => {});
    });
    $('leave-btn').addEventListener('click', () => leave());
    $('chat-form').addEventListener('submit', (ev) => {
        ev.preventDefault();
        const input = $('chat-input');
        if (input.value && send(input.value) > 0)
            input.value = '';
    });
    $('clear-log').addEventListener('click', () => {
        $('log').textContent = '';
    });
    /* A clean DISCONNECT releases the client id at once for the next page load. */
    window.addEventListener('pagehide', () => {
        app.client?.disconnect('page closed').catch(() => {});
    });
    setPhase('idle');
    log('ready');
    if (q.get('autojoin') === '1')
        join().catch(() => {});
}

/*
 * Hook for automated browser tests:
 *   demo.state        'idle' | 'connecting' | 'waiting' | 'calling' | 'connected' | 'left' | 'error'
 *   demo.error        message when state is 'error'
 *   demo.lastMessage  last data channel message from a peer: {from, text, at} or null
 *   demo.messages     every chat message, both directions
 *   demo.send(text)   send on every open data channel; returns how many
 *   demo.join({room, identity, clientId, token, media, stun, server}) -> Promise
 *   demo.leave()      -> Promise
 *   demo.info()       snapshot: role, media, signaling state, participants, peers
 *   demo.client       the SignalManagerClient; demo.log: log lines
 */
window.demo = {
    get state() { return app.phase; },
    get error() { return app.error; },
    get lastMessage() { return app.lastMessage; },
    get messages() { return app.messages.slice(); },
    get client() { return app.client; },
    get log() { return app.logLines.slice(); },
    send,
    join,
    leave,
    info() {
        return {
            state: app.phase,
            error: app.error,
            clientId: app.me,
            roomId: app.roomId,
            role: app.role,
            media: app.mediaMode,
            signaling: app.client ? app.client.state : 'disconnected',
            participants: [...app.participants],
            peers: [...app.peers.values()].map((p) => ({
                id: p.id,
                initiator: p.initiator,
                connectionState: p.pc.connectionState,
                iceConnectionState: p.pc.iceConnectionState,
                dataChannel: p.dc ? p.dc.readyState : null,
                remoteTracks: p.stream ? p.stream.getTracks().map((t) => t.kind) : [],
            })),
        };
    },
};

init();
