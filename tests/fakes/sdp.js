'use strict';
/*
 * Small SDP parser/generator for the fake SFU (RFC 8866 syntax, JSEP/unified-plan
 * conventions).  Not a full implementation: enough to check that a client sent a
 * well-formed offer/answer and to produce syntactically valid answers and offers
 * whose m-sections mirror the request.
 *
 *   parse(text)                -> {origin, sessionName, attributes, groups, media[]}
 *                                 (throws SdpError on malformed SDP)
 *   createAnswer(offer, opts)  -> SDP text: same number, order, kinds and mids of
 *                                 m-sections as the offer; supported codecs kept
 *                                 (rtpmap/fmtp/rtcp-fb copied); direction flipped;
 *                                 setup answered (actpass/active -> passive,
 *                                 passive -> active); fresh ice-ufrag/pwd/fingerprint
 *   createOffer(sections, opts)-> SDP text of an offer (setup actpass)
 *   newTransport()             -> {iceUfrag, icePwd, fingerprint} for one PeerConnection
 *   codecsOf(media)            -> [{pt, name, clock, channels, fmtp, rtcpFb}] of a parsed m-section
 *
 * media[i] = {kind, port, proto, fmts[], rejected, mid, direction, setup, iceUfrag,
 *             icePwd, fingerprint, rtpmap{pt: {name, clock, channels}}, fmtp{pt},
 *             rtcpFb{pt: []}, extmap[], msid, ssrcs[], rtcpMux, sctpPort, lines[]}
 */

const crypto = require('node:crypto');

class SdpError extends Error {}

const DIRECTIONS = ['sendrecv', 'sendonly', 'recvonly', 'inactive'];
const FLIP = { sendrecv: 'sendrecv', sendonly: 'recvonly', recvonly: 'sendonly', inactive: 'inactive' };

/* Codecs the fake SFU accepts (Cloudflare: video H.264, H.265, VP8, VP9, AV1; audio
 * Opus, G.711).  rtx is kept when its apt is kept. */
const SUPPORTED = {
    audio: ['opus', 'pcmu', 'pcma', 'telephone-event'],
    video: ['vp8', 'vp9', 'h264', 'h265', 'av1'],
};
const STATIC_PT = { 0: { name: 'PCMU', clock: 8000, channels: 1 }, 8: { name: 'PCMA', clock: 8000, channels: 1 } };

const DEFAULT_CODECS = {
    audio: [
        { pt: 111, name: 'opus', clock: 48000, channels: 2, fmtp: 'minptime=10;useinbandfec=1', rtcpFb: ['transport-cc'] },
    ],
    video: [
        { pt: 96, name: 'VP8', clock: 90000, rtcpFb: ['goog-remb', 'transport-cc', 'ccm fir', 'nack', 'nack pli'] },
        { pt: 97, name: 'rtx', clock: 90000, fmtp: 'apt=96' },
        { pt: 102, name: 'H264', clock: 90000,
            fmtp: 'level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f',
            rtcpFb: ['goog-remb', 'transport-cc', 'ccm fir', 'nack', 'nack pli'] },
        { pt: 103, name: 'rtx', clock: 90000, fmtp: 'apt=102' },
    ],
};

function parse(text)
{
    if (typeof text !== 'string' || text.trim() === '') throw new SdpError('SDP is empty');
    const lines = text.split(/\r?\n/);
    if (lines[lines.length - 1] === '') lines.pop();
    if (lines[0] !== 'v=0') throw new SdpError('SDP must start with "v=0"');
    const out = { origin: null, sessionName: null, timing: null, attributes: [], groups: [], media: [], session: {} };
    let cur = null;
    lines.forEach((line, i) => {
        const m = /^([a-z])=(.*)$/.exec(line);
        if (!m) throw new SdpError(`line ${i + 1} is not "<letter>=<value>": ${JSON.stringify(line)}`);
        const [, type, value] = m;
        if (type === 'm') {
            const mm = /^(\w+) (\d+)(?:\/\d+)? (\S+)((?: \S+)+)$/.exec(value);
            if (!mm) throw new SdpError(`line ${i + 1}: malformed m= line ${JSON.stringify(line)}`);
            cur = {
                kind: mm[1], port: Number(mm[2]), proto: mm[3], fmts: mm[4].trim().split(' '),
                rejected: Number(mm[2]) === 0, mid: null, direction: null, setup: null,
                iceUfrag: null, icePwd: null, fingerprint: null, rtpmap: {}, fmtp: {}, rtcpFb: {},
                extmap: [], msid: null, ssrcs: [], rtcpMux: false, rtcpRsize: false, sctpPort: null,
                maxMessageSize: null, lines: [line],
            };
            out.media.push(cur);
            return;
        }
        if (cur) cur.lines.push(line);
        if (type === 'o') {
            if (cur) throw new SdpError(`line ${i + 1}: o= inside a media section`);
            if (value.split(' ').length !== 6) throw new SdpError(`line ${i + 1}: o= needs 6 fields`);
            out.origin = value;
        } else if (type === 's') {
            if (!cur) out.sessionName = value;
        } else if (type === 't') {
            if (!/^\d+ \d+$/.test(value)) throw new SdpError(`line ${i + 1}: malformed t= line`);
            out.timing = value;
        } else if (type === 'c') {
            if (!/^IN IP[46] \S+$/.test(value)) throw new SdpError(`line ${i + 1}: malformed c= line`);
        } else if (type === 'a') {
            parseAttribute(cur, out, value, i + 1);
        }
    });
    if (!out.origin) throw new SdpError('SDP has no o= line');
    if (out.sessionName === null) throw new SdpError('SDP has no s= line');
    if (!out.timing) throw new SdpError('SDP has no t= line');
    for (const md of out.media) {
        for (const k of ['iceUfrag', 'icePwd', 'fingerprint', 'setup']) {
            if (md[k] === null && out.session[k] !== undefined) md[k] = out.session[k];
        }
        if (md.direction === null) md.direction = out.session.direction || 'sendrecv';
    }
    return out;
}

function parseAttribute(media, out, value, lineNo)
{
    const colon = value.indexOf(':');
    const name = colon < 0 ? value : value.slice(0, colon);
    const arg = colon < 0 ? null : value.slice(colon + 1);
    const target = media || out.session;
    if (!media) out.attributes.push(value);
    switch (name) {
    case 'group':
        if (media) throw new SdpError(`line ${lineNo}: a=group must be at session level`);
        out.groups.push(arg.split(' '));
        break;
    case 'mid':
        if (!media) throw new SdpError(`line ${lineNo}: a=mid outside a media section`);
        if (!arg) throw new SdpError(`line ${lineNo}: empty a=mid`);
        media.mid = arg;
        break;
    case 'sendrecv': case 'sendonly': case 'recvonly': case 'inactive':
        target.direction = name;
        break;
    case 'setup':
        if (!['actpass', 'active', 'passive', 'holdconn'].includes(arg)) throw new SdpError(`line ${lineNo}: bad a=setup:${arg}`);
        target.setup = arg;
        break;
    case 'ice-ufrag':
        target.iceUfrag = arg;
        break;
    case 'ice-pwd':
        target.icePwd = arg;
        break;
    case 'fingerprint':
        if (!/^\S+ [0-9A-Fa-f:]+$/.test(arg || '')) throw new SdpError(`line ${lineNo}: malformed a=fingerprint`);
        target.fingerprint = arg;
        break;
    case 'rtpmap': {
        const m = /^(\d+) ([^/\s]+)\/(\d+)(?:\/(\d+))?$/.exec(arg || '');
        if (!m || !media) throw new SdpError(`line ${lineNo}: malformed a=rtpmap`);
        media.rtpmap[m[1]] = { name: m[2], clock: Number(m[3]), channels: m[4] ? Number(m[4]) : undefined };
        break;
    }
    case 'fmtp': {
        const m = /^(\d+) (.+)$/.exec(arg || '');
        if (!m || !media) throw new SdpError(`line ${lineNo}: malformed a=fmtp`);
        media.fmtp[m[1]] = m[2];
        break;
    }
    case 'rtcp-fb': {
        const m = /^(\d+|\*) (.+)$/.exec(arg || '');
        if (!m || !media) throw new SdpError(`line ${lineNo}: malformed a=rtcp-fb`);
        (media.rtcpFb[m[1]] = media.rtcpFb[m[1]] || []).push(m[2]);
        break;
    }
    case 'extmap':
        if (media) media.extmap.push(arg);
        break;
    case 'msid':
        if (media) media.msid = arg;
        break;
    case 'ssrc':
        if (media) media.ssrcs.push(arg);
        break;
    case 'rtcp-mux':
        if (media) media.rtcpMux = true;
        break;
    case 'rtcp-rsize':
        if (media) media.rtcpRsize = true;
        break;
    case 'sctp-port':
        if (media) media.sctpPort = Number(arg);
        break;
    case 'max-message-size':
        if (media) media.maxMessageSize = Number(arg);
        break;
    default:
        break;
    }
}

/*
 * Checks a parsed SDP the way the fake SFU needs: every m-section has a unique mid,
 * ICE credentials, a fingerprint and a setup role (unless rejected).  Returns the
 * parsed SDP; throws SdpError.
 */
function validate(text, role)
{
    const p = typeof text === 'string' ? parse(text) : text;
    if (!p.media.length) throw new SdpError('SDP has no m= sections');
    const mids = new Set();
    p.media.forEach((m, i) => {
        if (!m.mid) throw new SdpError(`m-section ${i} (${m.kind}) has no a=mid`);
        if (mids.has(m.mid)) throw new SdpError(`duplicate a=mid:${m.mid}`);
        mids.add(m.mid);
        if (m.rejected) return;
        if (!m.iceUfrag || !m.icePwd) throw new SdpError(`m-section mid ${m.mid} has no ICE credentials`);
        if (!m.fingerprint) throw new SdpError(`m-section mid ${m.mid} has no a=fingerprint`);
        if (!m.setup) throw new SdpError(`m-section mid ${m.mid} has no a=setup`);
        if (role === 'offer' && m.setup !== 'actpass') throw new SdpError(`offer m-section mid ${m.mid} must use a=setup:actpass`);
        if (role === 'answer' && m.setup === 'actpass') throw new SdpError(`answer m-section mid ${m.mid} must not use a=setup:actpass`);
    });
    return p;
}

function randomChars(n, alphabet)
{
    return Array.from(crypto.randomBytes(n), (b) => alphabet[b % alphabet.length]).join('');
}

const ICE_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

function newTransport()
{
    return {
        iceUfrag: randomChars(8, ICE_CHARS),
        icePwd: randomChars(24, ICE_CHARS),
        fingerprint: 'sha-256 ' + crypto.randomBytes(32).toString('hex').toUpperCase().match(/../g).join(':'),
        sessionVersion: 1,
        originId: BigInt('0x' + crypto.randomBytes(7).toString('hex')).toString(),
    };
}

function codecName(media, pt)
{
    const r = media.rtpmap[pt] || STATIC_PT[pt];
    return r ? r.name : null;
}

/* Codecs of a parsed m-section, optionally only the supported ones (+ their rtx). */
function codecsOf(media, onlySupported = false)
{
    const ok = new Set();
    if (onlySupported) {
        const sup = SUPPORTED[media.kind] || [];
        for (const pt of media.fmts) {
            const n = codecName(media, pt);
            if (n && sup.includes(n.toLowerCase())) ok.add(pt);
        }
        for (const pt of media.fmts) {
            const n = codecName(media, pt);
            const apt = /(?:^|;)\s*apt=(\d+)/.exec(media.fmtp[pt] || '');
            if (n && n.toLowerCase() === 'rtx' && apt && ok.has(apt[1])) ok.add(pt);
        }
    }
    return media.fmts.filter((pt) => !onlySupported || ok.has(pt)).map((pt) => {
        const r = media.rtpmap[pt] || STATIC_PT[pt] || { name: 'unknown', clock: 90000 };
        const c = { pt: Number(pt), name: r.name, clock: r.clock };
        if (r.channels) c.channels = r.channels;
        if (media.fmtp[pt]) c.fmtp = media.fmtp[pt];
        if (media.rtcpFb[pt]) c.rtcpFb = media.rtcpFb[pt].slice();
        return c;
    });
}

function codecLines(codecs)
{
    const l = [];
    for (const c of codecs) {
        l.push(`a=rtpmap:${c.pt} ${c.name}/${c.clock}${c.channels ? '/' + c.channels : ''}`);
        for (const fb of c.rtcpFb || []) l.push(`a=rtcp-fb:${c.pt} ${fb}`);
        if (c.fmtp) l.push(`a=fmtp:${c.pt} ${c.fmtp}`);
    }
    return l;
}

function sessionLines(t, bundle)
{
    const l = ['v=0', `o=- ${t.originId} ${t.sessionVersion} IN IP4 127.0.0.1`, 's=-', 't=0 0'];
    if (bundle.length) l.push(`a=group:BUNDLE ${bundle.join(' ')}`);
    l.push('a=msid-semantic: WMS *');
    return l;
}

function transportLines(t, setup, withCandidate)
{
    const l = ['c=IN IP4 0.0.0.0', `a=ice-ufrag:${t.iceUfrag}`, `a=ice-pwd:${t.icePwd}`, 'a=ice-options:trickle',
        `a=fingerprint:${t.fingerprint}`, `a=setup:${setup}`];
    if (withCandidate) {
        l.splice(1, 0, 'a=rtcp:9 IN IP4 0.0.0.0');
        l.push('a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host', 'a=end-of-candidates');
    }
    return l;
}

function sendLines(kind, mid, send)
{
    const ssrc = send.ssrc || (crypto.randomBytes(4).readUInt32BE(0) >>> 0) || 1;
    const stream = send.streamId || `sfu-${mid}`;
    const track = send.trackId || `${kind}-${mid}`;
    return [`a=msid:${stream} ${track}`, `a=ssrc:${ssrc} cname:sfu-fake`, `a=ssrc:${ssrc} msid:${stream} ${track}`];
}

/*
 * Answer to an offer.  opts: transport (newTransport(); a fresh one if omitted),
 * directions {mid: direction} overrides, send {mid: {streamId, trackId, ssrc}}.
 */
function createAnswer(offerText, opts = {})
{
    const offer = typeof offerText === 'string' ? parse(offerText) : offerText;
    const t = opts.transport || newTransport();
    const sections = [];
    const bundle = [];
    let first = true;
    for (const m of offer.media) {
        const l = [];
        if (m.kind === 'application') {
            if (m.rejected || !/SCTP/i.test(m.proto)) {
                sections.push([`m=application 0 ${m.proto} ${m.fmts.join(' ')}`, 'c=IN IP4 0.0.0.0', `a=mid:${m.mid}`]);
                continue;
            }
            l.push(`m=application 9 ${m.proto} ${m.fmts.join(' ')}`);
            l.push(...transportLines(t, answerSetup(m.setup), first));
            l.push(`a=mid:${m.mid}`, `a=sctp-port:${m.sctpPort || 5000}`, 'a=max-message-size:262144');
            first = false;
            bundle.push(m.mid);
            sections.push(l);
            continue;
        }
        const codecs = m.rejected ? [] : codecsOf(m, true);
        if (!codecs.length || (m.kind !== 'audio' && m.kind !== 'video')) {
            sections.push([`m=${m.kind} 0 ${m.proto} ${m.fmts[0]}`, 'c=IN IP4 0.0.0.0', `a=mid:${m.mid}`, 'a=inactive']);
            continue;
        }
        const dir = (opts.directions && opts.directions[m.mid]) || FLIP[m.direction] || 'sendrecv';
        l.push(`m=${m.kind} 9 ${m.proto} ${codecs.map((c) => c.pt).join(' ')}`);
        l.push(...transportLines(t, answerSetup(m.setup), first));
        l.push(`a=mid:${m.mid}`);
        for (const e of m.extmap) l.push(`a=extmap:${e}`);
        l.push(`a=${dir}`);
        if (dir === 'sendrecv' || dir === 'sendonly') l.push(...sendLines(m.kind, m.mid, (opts.send && opts.send[m.mid]) || {}));
        l.push('a=rtcp-mux');
        if (m.rtcpRsize) l.push('a=rtcp-rsize');
        l.push(...codecLines(codecs));
        first = false;
        bundle.push(m.mid);
        sections.push(l);
    }
    return join([...sessionLines(t, bundle), ...sections.flat()]);
}

function answerSetup(offered)
{
    return offered === 'passive' ? 'active' : 'passive';
}

/*
 * Offer from a list of sections [{mid, kind, direction, codecs?, rejected?, send?}]
 * (kind "audio" | "video" | "application").  opts.transport as for createAnswer;
 * the caller bumps transport.sessionVersion between offers of one session.
 */
function createOffer(sectionsIn, opts = {})
{
    const t = opts.transport || newTransport();
    const bundle = [];
    const out = [];
    let first = true;
    for (const s of sectionsIn) {
        if (s.kind === 'application') {
            if (s.rejected) {
                out.push('m=application 0 UDP/DTLS/SCTP webrtc-datachannel', 'c=IN IP4 0.0.0.0', `a=mid:${s.mid}`);
                continue;
            }
            out.push('m=application 9 UDP/DTLS/SCTP webrtc-datachannel', ...transportLines(t, 'actpass', first),
                `a=mid:${s.mid}`, 'a=sctp-port:5000', 'a=max-message-size:262144');
            bundle.push(s.mid);
            first = false;
            continue;
        }
        const codecs = s.codecs && s.codecs.length ? s.codecs : DEFAULT_CODECS[s.kind] || DEFAULT_CODECS.video;
        if (s.rejected) {
            out.push(`m=${s.kind} 0 UDP/TLS/RTP/SAVPF ${codecs[0].pt}`, 'c=IN IP4 0.0.0.0', `a=mid:${s.mid}`, 'a=inactive');
            continue;
        }
        const dir = s.direction || 'sendonly';
        out.push(`m=${s.kind} 9 UDP/TLS/RTP/SAVPF ${codecs.map((c) => c.pt).join(' ')}`,
            ...transportLines(t, 'actpass', first), `a=mid:${s.mid}`, `a=${dir}`);
        if (dir === 'sendrecv' || dir === 'sendonly') out.push(...sendLines(s.kind, s.mid, s.send || {}));
        out.push('a=rtcp-mux', 'a=rtcp-rsize', ...codecLines(codecs));
        bundle.push(s.mid);
        first = false;
    }
    return join([...sessionLines(t, bundle), ...out]);
}

function join(lines)
{
    return lines.join('\r\n') + '\r\n';
}

/* A browser-like offer for tests: kinds like ['audio', 'video'], mids "0", "1", ... */
function sampleOffer(kinds = ['audio', 'video'], o = {})
{
    const t = o.transport || newTransport();
    return createOffer(kinds.map((kind, i) => ({
        mid: String((o.firstMid || 0) + i),
        kind,
        direction: o.direction || (kind === 'application' ? undefined : 'sendonly'),
    })), { transport: t });
}

module.exports = {
    SdpError,
    DIRECTIONS,
    DEFAULT_CODECS,
    parse,
    validate,
    createAnswer,
    createOffer,
    newTransport,
    codecsOf,
    sampleOffer,
};
