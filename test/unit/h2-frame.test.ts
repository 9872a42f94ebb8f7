// HTTP/2 frame checks (RFC 9113 §6): which malformed frame headers, padding and settings
// are connection errors and with which code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkFrame, checkSetting, unpad, frame, E, T, F, S } from '../../agent/proxy/h2/frame';

const MAX = 16384;

test('frame headers: size, stream 0 rules, fixed lengths', () => {
  const cases: [string, number, number, number, number, number][] = [
    // name, type, flags, stream, length, expected (-1 = acceptable)
    ['DATA over max frame size', T.DATA, 0, 1, MAX + 1, E.FRAME_SIZE_ERROR],
    ['DATA at max frame size', T.DATA, 0, 1, MAX, -1],
    ['DATA on stream 0', T.DATA, 0, 0, 1, E.PROTOCOL_ERROR],
    ['HEADERS on stream 0', T.HEADERS, F.END_HEADERS, 0, 1, E.PROTOCOL_ERROR],
    ['CONTINUATION on stream 0', T.CONTINUATION, 0, 0, 1, E.PROTOCOL_ERROR],
    ['PRIORITY length 4', T.PRIORITY, 0, 1, 4, E.FRAME_SIZE_ERROR],
    ['PRIORITY on stream 0', T.PRIORITY, 0, 0, 5, E.PROTOCOL_ERROR],
    ['RST_STREAM length 3', T.RST_STREAM, 0, 1, 3, E.FRAME_SIZE_ERROR],
    ['RST_STREAM on stream 0', T.RST_STREAM, 0, 0, 4, E.PROTOCOL_ERROR],
    ['SETTINGS length 5', T.SETTINGS, 0, 0, 5, E.FRAME_SIZE_ERROR],
    ['SETTINGS ACK with payload', T.SETTINGS, F.ACK, 0, 6, E.FRAME_SIZE_ERROR],
    ['SETTINGS on stream 1', T.SETTINGS, 0, 1, 6, E.PROTOCOL_ERROR],
    ['SETTINGS length 12', T.SETTINGS, 0, 0, 12, -1],
    ['PUSH_PROMISE (push disabled)', T.PUSH_PROMISE, F.END_HEADERS, 1, 4, E.PROTOCOL_ERROR],
    ['PING length 7', T.PING, 0, 0, 7, E.FRAME_SIZE_ERROR],
    ['PING on stream 1', T.PING, 0, 1, 8, E.PROTOCOL_ERROR],
    ['GOAWAY length 7', T.GOAWAY, 0, 0, 7, E.FRAME_SIZE_ERROR],
    ['GOAWAY on stream 3', T.GOAWAY, 0, 3, 8, E.PROTOCOL_ERROR],
    ['GOAWAY with debug data', T.GOAWAY, 0, 0, 20, -1],
    ['WINDOW_UPDATE length 5', T.WINDOW_UPDATE, 0, 0, 5, E.FRAME_SIZE_ERROR],
    ['unknown type', 0xfa, 0xff, 7, 100, -1],
  ];
  for (const [name, type, flags, stream, len, want] of cases) assert.equal(checkFrame(type, flags, stream, len, MAX), want, name);
});

test('padding and priority fields are stripped; padding longer than the frame is an error', () => {
  const p = Buffer.from([3, 0x61, 0x62, 0, 0, 0]);
  assert.equal(unpad(T.DATA, F.PADDED, p)!.toString(), 'ab');
  assert.equal(unpad(T.DATA, F.PADDED, Buffer.from([6, 1, 2, 3, 4, 5])), null);
  assert.equal(unpad(T.DATA, F.PADDED, Buffer.alloc(0)), null);
  assert.equal(unpad(T.DATA, 0, p), p);
  const h = Buffer.from([1, 0, 0, 0, 3, 16, 0x82, 0]);
  assert.deepEqual([...unpad(T.HEADERS, F.PADDED | F.PRIORITY, h)!], [0x82]);
  assert.equal(unpad(T.HEADERS, F.PRIORITY, Buffer.from([0, 0, 0, 3])), null);
});

test('settings values', () => {
  assert.equal(checkSetting(S.ENABLE_PUSH, 2), E.PROTOCOL_ERROR);
  assert.equal(checkSetting(S.ENABLE_PUSH, 1), -1);
  assert.equal(checkSetting(S.INITIAL_WINDOW_SIZE, 2 ** 31), E.FLOW_CONTROL_ERROR);
  assert.equal(checkSetting(S.INITIAL_WINDOW_SIZE, 2 ** 31 - 1), -1);
  assert.equal(checkSetting(S.MAX_FRAME_SIZE, 16383), E.PROTOCOL_ERROR);
  assert.equal(checkSetting(S.MAX_FRAME_SIZE, 2 ** 24), E.PROTOCOL_ERROR);
  assert.equal(checkSetting(S.MAX_FRAME_SIZE, 2 ** 24 - 1), -1);
  assert.equal(checkSetting(0x99, 12345), -1); // unknown settings are ignored
});

test('frame writer lays out the 9-byte header', () => {
  const f = frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 0x80000003, Buffer.from([0x82]));
  assert.deepEqual([...f], [0, 0, 1, 1, 5, 0, 0, 0, 3, 0x82]); // the reserved bit is cleared
});
