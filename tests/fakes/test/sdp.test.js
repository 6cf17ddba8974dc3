'use strict';
/* SDP helper: parsing, validation, answers mirroring offers, SFU offers. */

const test = require('node:test');
const assert = require('node:assert/strict');
const sdp = require('../sdp');

/* A Chrome-like publish offer: audio + video (VP8, H264 + rtx, an unsupported codec) + data. */
const BROWSER_OFFER = [
    'v=0',
    'o=- 4611731400430051336 2 IN IP4 127.0.0.1',
    's=-',
    't=0 0',
    'a=group:BUNDLE 0 1 2',
    'a=extmap-allow-mixed',
    'a=msid-semantic: WMS stream1',
    'm=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 126',
    'c=IN IP4 0.0.0.0',
    'a=rtcp:9 IN IP4 0.0.0.0',
    'a=ice-ufrag:abcd',
    'a=ice-pwd:0123456789abcdefghijklmn',
    'a=ice-options:trickle',
    'a=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99',
    'a=setup:actpass',
    'a=mid:0',
    'a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level',
    'a=sendonly',
    'a=msid:stream1 audio1',
    'a=rtcp-mux',
    'a=rtpmap:111 opus/48000/2',
    'a=rtcp-fb:111 transport-cc',
    'a=fmtp:111 minptime=10;useinbandfec=1',
    'a=rtpmap:63 red/48000/2',
    'a=fmtp:63 111/111',
    'a=rtpmap:9 G722/8000',
    'a=rtpmap:126 telephone-event/8000',
    'a=ssrc:1111 cname:x',
    'm=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 35',
    'c=IN IP4 0.0.0.0',
    'a=ice-ufrag:abcd',
    'a=ice-pwd:0123456789abcdefghijklmn',
    'a=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99',
    'a=setup:actpass',
    'a=mid:1',
    'a=sendonly',
    'a=rtcp-mux',
    'a=rtcp-rsize',
    'a=rtpmap:96 VP8/90000',
    'a=rtcp-fb:96 nack',
    'a=rtcp-fb:96 nack pli',
    'a=rtpmap:97 rtx/90000',
    'a=fmtp:97 apt=96',
    'a=rtpmap:102 H264/90000',
    'a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f',
    'a=rtpmap:103 rtx/90000',
    'a=fmtp:103 apt=102',
    'a=rtpmap:35 flexfec-03/90000',
    'm=application 9 UDP/DTLS/SCTP webrtc-datachannel',
    'c=IN IP4 0.0.0.0',
    'a=ice-ufrag:abcd',
    'a=ice-pwd:0123456789abcdefghijklmn',
    'a=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99',
    'a=setup:actpass',
    'a=mid:2',
    'a=sctp-port:5000',
    'a=max-message-size:262144',
].join('\r\n') + '\r\n';

test('parse: m-sections, mids, codecs, transport attributes', () => {
    const p = sdp.validate(BROWSER_OFFER, 'offer');
    assert.equal(p.media.length, 3);
    assert.deepEqual(p.media.map((m) => [m.kind, m.mid, m.direction]), [['audio', '0', 'sendonly'], ['video', '1', 'sendonly'], ['application', '2', 'sendrecv']]);
    assert.deepEqual(p.groups, [['BUNDLE', '0', '1', '2']]);
    assert.equal(p.media[0].rtpmap['111'].name, 'opus');
    assert.equal(p.media[0].rtpmap['111'].channels, 2);
    assert.equal(p.media[1].fmtp['97'], 'apt=96');
    assert.deepEqual(sdp.codecsOf(p.media[1], true).map((c) => c.pt), [96, 97, 102, 103]);
    assert.deepEqual(sdp.codecsOf(p.media[0], true).map((c) => c.name), ['opus', 'PCMU', 'PCMA', 'telephone-event']);
    assert.equal(p.media[2].sctpPort, 5000);
});

test('parse rejects malformed SDP', () => {
    const bad = [
        '',
        'v=1\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n',
        'v=0\r\ns=-\r\nt=0 0\r\n',
        'v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio x RTP 0\r\n',
        'v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nthis is not sdp\r\n',
        'v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:zero PCMU/8000\r\n',
    ];
    for (const s of bad) assert.throws(() => sdp.parse(s), sdp.SdpError, JSON.stringify(s));
    assert.throws(() => sdp.validate('v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n'), /no a=mid/);
});

test('createAnswer: same m-line count, order, kinds and mids; flipped direction; codecs subset', () => {
    const answer = sdp.createAnswer(BROWSER_OFFER);
    assert.ok(answer.endsWith('\r\n'));
    assert.ok(!/[^\r]\n/.test(answer), 'CRLF line endings only');
    const a = sdp.validate(answer, 'answer');
    const o = sdp.parse(BROWSER_OFFER);
    assert.equal(a.media.length, o.media.length);
    assert.deepEqual(a.media.map((m) => m.mid), o.media.map((m) => m.mid));
    assert.deepEqual(a.media.map((m) => m.kind), o.media.map((m) => m.kind));
    assert.equal(a.media[0].direction, 'recvonly');
    assert.equal(a.media[1].direction, 'recvonly');
    assert.equal(a.media[0].setup, 'passive');
    assert.deepEqual(a.media[0].fmts, ['111', '0', '8', '126'], 'unsupported red/G722 dropped, order kept');
    assert.equal(a.media[0].fmtp['111'], 'minptime=10;useinbandfec=1', 'fmtp copied');
    assert.deepEqual(a.media[1].fmts, ['96', '97', '102', '103']);
    assert.deepEqual(a.media[1].rtcpFb['96'], ['nack', 'nack pli']);
    assert.equal(a.media[1].rtpmap['102'].name, 'H264');
    assert.equal(a.media[0].extmap[0], '1 urn:ietf:params:rtp-hdrext:ssrc-audio-level');
    assert.equal(a.media[2].sctpPort, 5000);
    assert.deepEqual(a.groups, [['BUNDLE', '0', '1', '2']]);
    assert.notEqual(a.media[0].iceUfrag, 'abcd');
    assert.match(a.media[0].fingerprint, /^sha-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
});

test('createAnswer: recvonly offer gets sendonly + msid/ssrc; rejected and codec-less sections stay in place', () => {
    const offer = BROWSER_OFFER.replace(/a=sendonly/g, 'a=recvonly')
        .replace('m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 35', 'm=video 0 UDP/TLS/RTP/SAVPF 96 97 102 103 35')
        .replace('m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 126', 'm=audio 9 UDP/TLS/RTP/SAVPF 9');
    const a = sdp.validate(sdp.createAnswer(offer), 'answer');
    assert.deepEqual(a.media.map((m) => m.mid), ['0', '1', '2']);
    assert.equal(a.media[0].rejected, true, 'no supported codec -> rejected');
    assert.equal(a.media[1].rejected, true, 'rejected offer section stays rejected');
    assert.deepEqual(a.groups, [['BUNDLE', '2']]);

    const pull = sdp.validate(sdp.createAnswer(BROWSER_OFFER.replace(/a=sendonly/g, 'a=recvonly')), 'answer');
    assert.equal(pull.media[0].direction, 'sendonly');
    assert.ok(pull.media[0].msid);
    assert.ok(pull.media[0].ssrcs.length > 0);
});

test('createOffer: actpass, given mids/kinds/directions, stable transport across offers', () => {
    const t = sdp.newTransport();
    const o1 = sdp.validate(sdp.createOffer([{ mid: '0', kind: 'audio', direction: 'sendonly' },
        { mid: '1', kind: 'video', direction: 'sendonly' }, { mid: '2', kind: 'video', rejected: true }], { transport: t }), 'offer');
    assert.deepEqual(o1.media.map((m) => [m.mid, m.kind, m.rejected]), [['0', 'audio', false], ['1', 'video', false], ['2', 'video', true]]);
    assert.equal(o1.media[0].setup, 'actpass');
    assert.equal(o1.media[0].iceUfrag, t.iceUfrag);
    t.sessionVersion += 1;
    const o2 = sdp.parse(sdp.createOffer([{ mid: '0', kind: 'audio' }], { transport: t }));
    assert.equal(o2.media[0].icePwd, t.icePwd);
    assert.equal(o2.origin.split(' ')[2], String(t.sessionVersion));
    /* an answer to our own offer round-trips */
    const back = sdp.validate(sdp.createAnswer(sdp.createOffer([{ mid: '5', kind: 'video', direction: 'sendonly' }])), 'answer');
    assert.deepEqual(back.media.map((m) => [m.mid, m.direction]), [['5', 'recvonly']]);
    const sample = sdp.validate(sdp.sampleOffer(['audio', 'video']), 'offer');
    assert.deepEqual(sample.media.map((m) => m.mid), ['0', '1']);
});
