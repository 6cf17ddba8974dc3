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

export interface RoomCreateAck extends Ack {
    room_id: string;
    session_id?: string;
    connection_info?: Record<string, unknown>;
    answer_sdp?: string;
}

export interface RoomJoinAck extends Ack {
    room_id: string;
    session_id?: string;
    participants: string[];
    offer_sdp?: string;
    publish?: Record<string, unknown>;
    subscribe?: Record<string, unknown>;
}

/* ---- events ---- */

export type SignalEvent =
    | { binary: false; from: string; type: string; roomId: string | null; data: unknown; uuid: string }
    | { binary: true; from: string; bytes: Uint8Array; uuid: string };

export interface RoomEvent {
    event: 'participant_joined' | 'participant_left' | 'room_closed' | 'tracks_published' | string;
    room_id?: string;
    client_id?: string;
    tracks?: Array<Record<string, unknown>>;
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
    offerSdp?: string;
    metadata?: Record<string, unknown>;
    capabilities?: string[];
}

export interface JoinRoomOptions {
    metadata?: Record<string, unknown>;
    offerSdp?: string;
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

    connect(): Promise<ConnectAck>;
    register(opts?: RegisterOptions): Promise<Ack>;
    unregister(): Promise<Ack>;
    createRoom(opts?: CreateRoomOptions): Promise<RoomCreateAck>;
    joinRoom(roomId: string, opts?: JoinRoomOptions): Promise<RoomJoinAck>;
    leaveRoom(roomId: string): Promise<Ack>;
    /** Resolves with the SIGNAL's uuid once sent; later ERRORs come as 'error' events. */
    signal(targetClientId: string, type: string, data?: unknown, opts?: { roomId?: string | null }): Promise<string>;
    signalBinary(targetClientId: string, bytes: BinaryLike): Promise<string>;
    /** SFU mode: SESSION_UPDATE; resolves with the SESSION_UPDATE_ACK payload. */
    sessionUpdate(payload: Record<string, unknown>): Promise<Ack>;
    ping(): Promise<{ timestamp: number; serverTime: number; rtt: number }>;
    /** Any request type; resolves with its ACK payload (or the uuid with noReply). */
    request(type: number, payload: Record<string, unknown>, opts?: { timeout?: number; noReply?: boolean }): Promise<any>;
    disconnect(reason?: string): Promise<{ code: number | null; reason: string }>;
}

export default SignalManagerClient;
