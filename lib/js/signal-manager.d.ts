/*
 * TypeScript declarations for signal-manager.js (Signal Manager JavaScript SDK).
 * The protocol is described in docs/protocol.md; the API in README.md.
 */

export declare const PROTOCOL_VERSION: '1.0.0';
export declare const SDK_VERSION: string;
export declare const START_BYTE: 0xaa;
export declare const HEADER_SIZE: 21;
export declare const MAX_PAYLOAD_SIZE: 65535;
export declare const MAX_ID_LENGTH: 128;

export declare const MessageType: Readonly<{
    CONNECT: 0x01;
    CONNECT_ACK: 0x02;
    DISCONNECT: 0x03;
    PING: 0x04;
    PING_ACK: 0x05;
    REGISTER: 0x20;
    REGISTER_ACK: 0x21;
    UNREGISTER: 0x22;
    UNREGISTER_ACK: 0x23;
    ROOM_CREATE: 0x30;
    ROOM_CREATE_ACK: 0x31;
    ROOM_JOIN: 0x32;
    ROOM_JOIN_ACK: 0x33;
    ROOM_LEAVE: 0x34;
    ROOM_LEAVE_ACK: 0x35;
    ROOM_EVENT: 0x36;
    SIGNAL: 0x40;
    SESSION_UPDATE: 0x42;
    SESSION_UPDATE_ACK: 0x43;
    ERROR: 0xff;
}>;
export type MessageTypeValue = (typeof MessageType)[keyof typeof MessageType];

export declare const PayloadType: Readonly<{ NONE: 0x00; BINARY: 0x01; JSON: 0x02 }>;
export type PayloadTypeValue = (typeof PayloadType)[keyof typeof PayloadType];

export declare const ClientState: Readonly<{
    DISCONNECTED: 'disconnected';
    CONNECTING: 'connecting';
    CONNECTED: 'connected';
    REGISTERED: 'registered';
    RECONNECTING: 'reconnecting';
    DISCONNECTING: 'disconnecting';
}>;
export type ClientStateValue = (typeof ClientState)[keyof typeof ClientState];

/** SFU mode: most tracks (pull) or mids (close) one SESSION_UPDATE may carry: 64. */
export declare const MAX_SFU_TRACKS: 64;

/** SESSION_UPDATE actions (SFU mode). */
export declare const SessionAction: Readonly<{ ANSWER: 'answer'; PULL: 'pull'; CLOSE: 'close' }>;
export type SessionActionValue = (typeof SessionAction)[keyof typeof SessionAction];

/** Close codes after which the client does not reconnect: 1002, 1003, 1008, 1009, 4409. */
export declare const NO_RECONNECT_CLOSE_CODES: readonly number[];

export declare function messageTypeName(type: number): string;
export declare function isValidId(id: unknown): id is string;

/* ---- errors ---- */

/** What an 'error' event relates to. */
export type ErrorContext =
    | { kind: 'signal'; targetClientId: string; type: string | null; roomId: string | null; binary?: boolean }
    | { kind: 'decode' }
    | { kind: 'unsolicited' }
    | { kind: 'reregister' }
    | { kind: 'rejoin'; roomId: string };

export declare class SignalManagerError extends Error {
    constructor(errorCode: number, message: string, extra?: {
        details?: Record<string, unknown>; uuid?: string | null; local?: boolean;
        requestType?: string | null; context?: ErrorContext | null; cause?: unknown;
    });
    name: string;
    /** Protocol error_code (400, 401, 403, 404, 408, 409, 413, 429, 500, 503) or its local equivalent. */
    errorCode: number;
    /** ERROR payload `details` (server errors) or SDK details (local errors). */
    details: Record<string, unknown>;
    /** uuid of the request this error answers, when known. */
    uuid: string | null;
    /** true when raised by the SDK (timeout, not connected, bad argument), false for a server ERROR. */
    local: boolean;
    /** Request type name, e.g. "REGISTER", when known. */
    requestType: string | null;
    /** Set on errors delivered through the 'error' event. */
    context: ErrorContext | null;
    static fromPayload(payload: unknown, uuid?: string | null, requestType?: string | null): SignalManagerError;
}

/** No reply within the timeout: errorCode 408, local true. */
export declare class RequestTimeoutError extends SignalManagerError {
    constructor(requestType: string, timeoutMs: number, uuid: string | null);
}

export type FrameErrorReason =
    | 'not-binary' | 'too-short' | 'bad-start-byte' | 'length-mismatch' | 'unknown-payload-type'
    | 'none-with-payload' | 'binary-not-allowed' | 'empty-json' | 'invalid-utf8' | 'invalid-json'
    | 'json-not-object' | 'bad-signal-prefix' | 'bad-type' | 'bad-uuid' | 'bad-payload'
    | 'payload-too-large' | 'bad-id';

/** Encode/decode failure: errorCode 400 (413 for payload-too-large), local true. */
export declare class FrameError extends SignalManagerError {
    constructor(reason: FrameErrorReason, message: string, errorCode?: number);
    reason: FrameErrorReason;
}

/* ---- uuid and codec ---- */

export declare function uuidv4(): string;
export declare function uuidToBytes(text: string): Uint8Array;
export declare function uuidFromBytes(bytes: Uint8Array): string;

export type BinaryLike = ArrayBuffer | ArrayBufferView;
export type MessageData = BinaryLike | BinaryLike[];

export declare function toBytes(data: MessageData): Uint8Array;

export interface FrameInput {
    type: number;
    /** 8-4-4-4-12 text or 16 bytes; a fresh v4 uuid when absent. */
    uuid?: string | Uint8Array | null;
    payloadType?: number;
    /** Raw payload bytes; wins over `json`. */
    payload?: BinaryLike | null;
    /** A value to send as a JSON payload. */
    json?: unknown;
}

export interface DecodedFrame {
    type: number;
    typeName: string;
    uuid: string;
    payloadType: PayloadTypeValue;
    /** View of the payload bytes. */
    payload: Uint8Array;
    /** Parsed object for a JSON payload; undefined otherwise. */
    json: Record<string, any> | undefined;
}

export declare function encodeFrame(frame: FrameInput): Uint8Array;
export declare function decodeFrame(data: MessageData): DecodedFrame;
export declare function encodeSignalBinary(clientId: string, body: BinaryLike): Uint8Array;
export declare function decodeSignalBinary(payload: BinaryLike): { clientId: string; body: Uint8Array };

/* ---- payloads ---- */

export interface ConnectAck {
    status: number;
    message?: string;
    session_id: string;
    server_version: string;
    /** Seconds between PINGs. */
    heartbeat_interval: number;
    capabilities?: string[];
    /** Present on servers with resume support. */
    resume_token?: string;
    resumed?: boolean;
    [key: string]: unknown;
}

export interface Ack {
    status?: number;
    message?: string;
    [key: string]: unknown;
}

/* SFU mode (webrtc.mode = cloudflare): docs/protocol.md 10.13. */

/** A publication: the publisher's SFU session and a track name (what tracks_published lists). */
export interface SfuPublication {
    session_id: string;
    track_name: string;
}

/** A per-track SFU failure inside a successful reply. */
export interface SfuTrackError {
    /** The SFU's errorCode, e.g. "not_found_track_error" (publisher not sending yet). */
    code: string;
    description?: string;
}

/** A track published by this client: its name and its mid in the client's offer. */
export interface SfuPublishedTrack {
    track_name: string;
    mid: string;
    error?: SfuTrackError;
}

/** A track pulled into a subscribe session; `mid` is "" when `error` is set. */
export interface SfuPulledTrack extends SfuPublication {
    /** mid of the track in the subscribe session's SDP (the SFU's offer). */
    mid: string;
    error?: SfuTrackError;
}

export interface ConnectionInfo {
    room_id: string;
    role: 'sender' | string;
    /** p2p: the signaling session id; cloudflare: the publish SFU session id. */
    session_id: string;
    /** p2p: "connected"; cloudflare: "connecting". */
    status: string;
    mode: 'p2p' | 'cloudflare';
    /** cloudflare only: the Calls app id. */
    app_id?: string;
    /** cloudflare only: the creator's published tracks. */
    tracks?: SfuPublishedTrack[];
    metadata: { session_id: string; created_at: string; client_id: string; [key: string]: unknown };
    [key: string]: unknown;
}

export interface RoomCreateAck extends Ack {
    room_id: string;
    session_id?: string;
    max_participants?: number;
    participants?: string[];
    connection_info?: ConnectionInfo;
    /** cloudflare: the SFU's answer to offerSdp. */
    answer_sdp?: string;
    /** cloudflare: the creator's subscribe SFU session (nothing pulled yet). */
    subscribe?: { session_id: string };
}

export interface RoomJoinAck extends Ack {
    room_id: string;
    session_id?: string;
    participants: string[];
    /** p2p: the creator's offer, first joiner only. */
    offer_sdp?: string;
    /** cloudflare, join with an offer: the joiner's publish session. */
    publish?: { session_id: string; answer_sdp: string; tracks: SfuPublishedTrack[] };
    /**
     * cloudflare: the joiner's subscribe session with every publication pulled;
     * offer_sdp is the SFU's offer (null when nothing could be pulled): answer it
     * with answerSubscription().
     */
    subscribe?: { session_id: string; offer_sdp: string | null; tracks: SfuPulledTrack[] };
}

/** Structured SESSION_UPDATE (checked locally before sending). */
export type SessionUpdateRequest =
    | { sessionId: string; action: 'answer'; answerSdp: string }
    | { sessionId: string; action: 'pull';
        tracks: Array<{ sessionId: string; trackName: string } | SfuPublication> }
    | { sessionId: string; action: 'close'; mids: string[] };

/** Raw SESSION_UPDATE wire payload (sent as given, plus `version`). */
export interface RawSessionUpdate {
    session_id: string;
    action: string;
    answer_sdp?: string;
    tracks?: SfuPublication[];
    mids?: string[];
    [key: string]: unknown;
}

export interface SessionUpdateAck extends Ack {
    status: 200;
    session_id: string;
    action: 'answer' | 'pull' | 'close';
    /** pull: the SFU's offer for the pulled tracks (null when none could be pulled). */
    offer_sdp?: string | null;
    /** pull: SfuPulledTrack[]; close: [{mid, error?}] where error is the SFU's errorCode. */
    tracks?: SfuPulledTrack[] | Array<{ mid: string; error?: string }>;
}

export interface SfuSessions {
    /** Publish SFU session; null after a join without an offer. */
    publish: string | null;
    /** Subscribe SFU session (pulls). */
    subscribe: string;
}

/* ---- events ---- */

export type SignalEvent =
    | { binary: false; from: string; type: string; roomId: string | null; data: unknown; uuid: string }
    | { binary: true; from: string; bytes: Uint8Array; uuid: string };

export interface RoomEvent {
    event: 'participant_joined' | 'participant_left' | 'room_closed' | 'tracks_published' | string;
    room_id?: string;
    client_id?: string;
    /**
     * cloudflare: tracks_published - the new publications (pull them with
     * pullTracks()); participant_left - the publications that stopped with
     * the member (absent when it published nothing).
     */
    tracks?: SfuPublication[];
    /** room_closed: "idle". */
    reason?: string;
    timestamp?: number;
    [key: string]: unknown;
}

export interface DisconnectNotice {
    reason: string;
    code: number | null;
    /** The server's advice; defaults to true when the notice omits it. */
    reconnect: boolean;
}

export type DisconnectEvent =
    | ({ source: 'notice' } & DisconnectNotice)
    | {
        source: 'close';
        /** WebSocket close code (1006 when the SDK dropped a dead or failed connection). */
        code: number | null;
        reason: string;
        /** The notice that preceded this close, if any. */
        notice?: DisconnectNotice | null;
        /** true when caused by disconnect(). */
        requested: boolean;
        willReconnect: boolean;
        /** true: the client is now 'disconnected' and will not retry on its own. */
        final: boolean;
        /** After failed reconnects: how many were made, and the last error. */
        attempts?: number;
        error?: SignalManagerError | Error | null;
    };

export interface ReconnectingEvent {
    attempt: number;
    maxAttempts: number;
    /** ms before this attempt. */
    delay: number;
}

export interface ReconnectedEvent {
    /** true: the server moved registration and rooms to the new connection. */
    resumed: boolean;
    registered: boolean;
    /** Rooms the client is in after the reconnect. */
    rooms: string[];
    /** Rooms that could not be re-joined (fallback path only). */
    failedRooms: Array<{ roomId: string; error: SignalManagerError }>;
    /** Set when the fallback REGISTER was refused. */
    registerError?: SignalManagerError;
    /**
     * Fallback path: the ROOM_JOIN_ACK (or ROOM_CREATE_ACK when re-created) of
     * each re-joined room.  In SFU mode they hold new SFU sessions (and an SFU
     * offer to answer); empty when resumed.
     */
    roomAcks: Record<string, RoomJoinAck | RoomCreateAck>;
    attempts: number;
    sessionId: string | null;
}

export interface StateEvent {
    state: ClientStateValue;
    previous: ClientStateValue;
}

export interface ClientEvents {
    state: StateEvent;
    signal: SignalEvent;
    roomEvent: RoomEvent;
    error: SignalManagerError;
    disconnect: DisconnectEvent;
    reconnecting: ReconnectingEvent;
    reconnected: ReconnectedEvent;
    /** Every decoded frame received (debugging, logging). */
    frame: DecodedFrame;
}

export declare class Emitter<E extends Record<string, any> = Record<string, any>> {
    /** Subscribe; returns an unsubscribe function. */
    on<K extends keyof E & string>(name: K, fn: (ev: E[K]) => void): () => void;
    off<K extends keyof E & string>(name: K, fn: (ev: E[K]) => void): void;
    once<K extends keyof E & string>(name: K, fn: (ev: E[K]) => void): () => void;
    emit<K extends keyof E & string>(name: K, ev: E[K]): void;
    listenerCount(name: keyof E & string): number;
}

/* ---- client ---- */

/** A WebSocket constructor compatible with the browser's (the `ws` package's works). */
export type WebSocketConstructor = new (url: string) => any;

export interface ClientOptions {
    /** ws:// or wss:// URL of the server (path "/"). */
    url: string;
    clientId: string;
    /** A token, or a function returning one (called for every CONNECT and REGISTER/UNREGISTER). */
    authToken: string | (() => string | Promise<string>);
    /** WebSocket implementation; default globalThis.WebSocket. */
    WebSocket?: WebSocketConstructor;
    /** Protocol version sent; default "1.0.0". */
    version?: string;
    /** CONNECT and default REGISTER capabilities; default ["websocket","heartbeat","webrtc"]. */
    capabilities?: string[];
    /** Extra CONNECT metadata (merged over {sdk, platform, userAgent?, timestamp}). */
    metadata?: Record<string, unknown>;
    /** ms to wait for any reply; default 10000. */
    requestTimeout?: number;
    /** ms for WebSocket open + CONNECT_ACK; default requestTimeout. */
    connectTimeout?: number;
    /** ms between PINGs; default the CONNECT_ACK's heartbeat_interval seconds. */
    heartbeatInterval?: number;
    /** ms to wait for a PING_ACK before declaring the connection dead; default requestTimeout. */
    heartbeatTimeout?: number;
    /** Reconnect after an unexpected close; default true. */
    reconnect?: boolean;
    /** Default 5. */
    maxReconnectAttempts?: number;
    /** ms before the first attempt, doubled per attempt; default 500. */
    reconnectBaseDelay?: number;
    /** Cap of the doubled delay in ms; default 10000. */
    reconnectMaxDelay?: number;
    /** 0-1: each delay is d * (1 - jitter * random); default 0.5. */
    reconnectJitter?: number;
    /** When not resumed: ROOM_JOIN the rooms again after REGISTER; default true. */
    rejoinRooms?: boolean;
    /** When a rejoin gets 404: ROOM_CREATE the room again; default true. */
    recreateRooms?: boolean;
}

export interface RegisterOptions {
    roomId?: string | null;
    capabilities?: string[];
    metadata?: Record<string, unknown>;
}

export interface CreateRoomOptions {
    roomId?: string;
    /** p2p: kept for the first joiner; cloudflare: required, published to the SFU. */
    offerSdp?: string;
    metadata?: Record<string, unknown>;
    capabilities?: string[];
    /** ms for this call instead of requestTimeout. */
    timeout?: number;
}

export interface JoinRoomOptions {
    metadata?: Record<string, unknown>;
    /** cloudflare: tracks to publish (else subscribe only); p2p: ignored by the server. */
    offerSdp?: string;
    /** ms for this call instead of requestTimeout. */
    timeout?: number;
}

export interface CallOptions {
    /** ms for this call instead of requestTimeout. */
    timeout?: number;
}

export declare class SignalManagerClient extends Emitter<ClientEvents> {
    constructor(options: ClientOptions);

    readonly state: ClientStateValue;
    readonly url: string;
    readonly clientId: string;
    readonly sessionId: string | null;
    readonly connectAck: ConnectAck | null;
    readonly resumeToken: string | null;
    readonly registered: boolean;
    readonly rooms: string[];
    /** SFU mode: this client's SFU sessions in the room, or null. */
    sfuSessions(roomId: string): SfuSessions | null;

    connect(): Promise<ConnectAck>;
    register(opts?: RegisterOptions): Promise<Ack>;
    unregister(): Promise<Ack>;
    createRoom(opts?: CreateRoomOptions): Promise<RoomCreateAck>;
    joinRoom(roomId: string, opts?: JoinRoomOptions): Promise<RoomJoinAck>;
    leaveRoom(roomId: string): Promise<Ack>;
    /** Resolves with the SIGNAL's uuid once sent; later ERRORs come as 'error' events. */
    signal(targetClientId: string, type: string, data?: unknown, opts?: { roomId?: string | null }): Promise<string>;
    signalBinary(targetClientId: string, bytes: BinaryLike): Promise<string>;
    /** SFU mode: SESSION_UPDATE (structured or raw form); resolves with the SESSION_UPDATE_ACK payload. */
    sessionUpdate(payload: SessionUpdateRequest | RawSessionUpdate, opts?: CallOptions): Promise<SessionUpdateAck>;
    /** SFU mode: answer an SFU offer (SESSION_UPDATE action "answer"). */
    answerSubscription(sessionId: string, answerSdp: string, opts?: CallOptions): Promise<SessionUpdateAck>;
    /** SFU mode: pull publications into a subscribe session (action "pull"); answer the ACK's offer_sdp. */
    pullTracks(sessionId: string, tracks: Array<{ sessionId: string; trackName: string } | SfuPublication>,
        opts?: CallOptions): Promise<SessionUpdateAck>;
    /** SFU mode: close tracks by mid (action "close"). */
    closeTracks(sessionId: string, mids: string[], opts?: CallOptions): Promise<SessionUpdateAck>;
    ping(): Promise<{ timestamp: number; serverTime: number; rtt: number }>;
    /** Any request type; resolves with its ACK payload (or the uuid with noReply). */
    request(type: number, payload: Record<string, unknown>, opts?: { timeout?: number; noReply?: boolean }): Promise<any>;
    disconnect(reason?: string): Promise<{ code: number | null; reason: string }>;
}

export default SignalManagerClient;
