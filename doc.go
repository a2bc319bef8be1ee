// Package websocket implements the WebSocket protocol defined in RFC 6455,
// for servers and clients, as a drop-in replacement for
// github.com/gorilla/websocket: a program written for gorilla compiles and
// behaves the same after changing only its import path.
//
// # Overview
//
// A server upgrades an HTTP request with an Upgrader:
//
//	var upgrader = websocket.Upgrader{}
//
//	func handler(w http.ResponseWriter, r *http.Request) {
//		conn, err := upgrader.Upgrade(w, r, nil)
//		if err != nil {
//			return // Upgrade has already answered the client
//		}
//		defer conn.Close()
//		for {
//			messageType, p, err := conn.ReadMessage()
//			if err != nil {
//				return
//			}
//			if err := conn.WriteMessage(messageType, p); err != nil {
//				return
//			}
//		}
//	}
//
// A client connects with a Dialer (or DefaultDialer). Both sides get the
// same *Conn.
//
// # Messages
//
// A message is text (valid UTF-8) or binary, sent as one frame or as
// several fragments. ReadMessage returns a whole message in a new slice;
// NextReader returns an io.Reader that streams one, fragment by fragment.
// WriteMessage sends a message in one frame; NextWriter returns an
// io.WriteCloser that streams one, sending a fragment each time its write
// buffer fills and the last one on Close.
//
// # Concurrency
//
// Unlike gorilla, whole-message writes may be called from many goroutines
// at once: WriteMessage, WriteJSON, WritePreparedMessage, WriteControl and
// the write-side setters. Whole messages never interleave, and a control
// frame (a ping, the pong answering one, a close) may go out between two
// fragments of a message being streamed.
//
// A writer from NextWriter holds the connection's message slot from
// NextWriter until its Close. Here Go gives no way to tell which goroutine
// is asking, so one rule comes from gorilla and one from this package:
//
//   - gorilla's rule: a writer the application left open, with no call of
//     its own in progress, is closed by the next NextWriter, WriteMessage,
//     WriteJSON or WritePreparedMessage call, its message sent whole as
//     written so far; its Write and Close then fail. A program that writes
//     from one goroutine at a time (any program written for gorilla) can
//     only have left it open itself, so it behaves exactly as with gorilla,
//     and never waits for its own writer.
//   - when several goroutines stream with NextWriter, or one streams while
//     others write, a writer idle between its owner's calls must not be
//     closed by another goroutine's write: such a program calls
//     EnableConcurrentWriters once, and from then on every write waits for
//     an open writer to be closed by its owner. A Conn also switches by
//     itself the first time it sees a write call arrive while another is
//     in progress, which a single-writer program never shows; before that,
//     a write that lands between two calls of another goroutine's writer
//     is indistinguishable from gorilla's case. Once switched, a writer
//     left open blocks the other writers until it is closed (or the Conn
//     is closed), as any held lock would.
//
// Whole-message writes never leave a writer open, so they never meet the
// first rule's case among themselves: programs that only use them need no
// declaration.
//
// One goroutine at a time may read: NextReader, ReadMessage, ReadJSON,
// the reader NextReader returned, SetReadDeadline, SetReadLimit and the
// handler setters. Close and CloseGracefully may be called from any
// goroutine at any time.
//
// # Buffers
//
// The connection reads through one buffer of ReadBufferSize bytes and
// writes through one of WriteBufferSize bytes. Both come from pools (or
// from WriteBufferPool, if set) and go back to them when a message ends, so
// a connection between messages holds no write buffer. Large payloads
// skip the buffers: a large read goes straight into the caller's slice, and
// a large server write hands header and payload to one vectored write.
// The slice ReadMessage returns belongs to the caller. A slice passed to a
// write method may be reused as soon as the method returns.
//
// # Control messages and closing
//
// Ping, pong and close frames are handled while reading: by default a ping
// is answered with a pong carrying the same payload, a pong is ignored, and
// a close is answered with a close carrying the same code, after which the
// read returns a *CloseError. The application must therefore keep reading
// to process control messages. SetPingHandler, SetPongHandler and
// SetCloseHandler replace the defaults.
//
// A close frame is sent at most once; writes after it return ErrCloseSent.
// Once a server has both sent and received a close frame it closes the TCP
// connection itself, as RFC 6455 section 7.1.1 asks. CloseGracefully runs
// the whole closing handshake with a time bound; Close just closes the
// network connection.
//
// # Contexts
//
// ReadMessageContext, NextReaderContext, WriteMessageContext,
// NextWriterContext and CloseContext bound a call by a context. No
// goroutine waits for it: a canceled context moves the connection's
// deadline into the past (a context.AfterFunc), and the call puts back
// the deadline it found, so a deadline in the context and one set with
// SetReadDeadline or SetWriteDeadline compose, the earlier one ending the
// call. A context that is never done (context.Background) costs nothing;
// one that can be canceled costs the two allocations of
// context.AfterFunc per call.
//
// Unlike libraries that close the connection whenever a context ends,
// the outcome depends on how far the call got, and the error, a
// *ContextError wrapping the context's error, says which. Nothing of a
// message consumed or sent (a read waiting for the next message, a write
// waiting for another writer): Failed is false and the connection stays
// usable; the next read gets the next message. In the middle of a frame
// or of a message, the stream cannot be resumed: the connection is failed
// (close 1011, CloseInternalServerErr, sent where the stream allows, then
// the network connection closed) and Failed is true. The reader from
// NextReaderContext and the writer from NextWriterContext stay bound to
// their context for the whole message: a Read that must wait for the
// network, and a Write or Close that sends a frame, end with it (a
// message's first frame not yet sent: the message is dropped, Failed
// false; after that, Failed true). Calls served from buffered bytes, or
// that only fill the write buffer, do not look at the context. A write
// that gives up with nothing sent also keeps permessage-deflate in step:
// the compressor forgets the dropped message. On a Conn an Engine
// serves, the context reads refuse as NextReader does.
//
// # Keepalive
//
// A connection can watch its peer itself instead of the application
// writing a ping ticker and a pong deadline: set Upgrader.KeepAlive or
// Dialer.KeepAlive (Interval and Timeout; the zero value is off), or call
// Conn.SetKeepAlive at any time. A ping goes out every Interval from the
// connection's own timer (a time.AfterFunc, no goroutine), and anything
// that arrives from the peer, a data frame as much as a pong, counts as a
// sign of life. A peer from which nothing has arrived for
// Interval+Timeout (checked once an interval, so within
// 2*Interval+Timeout) has its connection failed: a close frame with 1011
// (CloseInternalServerErr) and the reason "keepalive timeout" is sent,
// best effort, the network connection is closed, and the read returns
// ErrKeepAliveTimeout; on an Engine, OnClose receives it. The pong
// handler still runs for every pong, and pongs, like every control
// frame, are seen only while the application reads. A zero Timeout sends
// pings only. Turned on, keepalive costs an idle connection about 0.2 KiB.
//
// # Errors from the peer
//
// Nothing the peer sends makes the library panic, log or allocate what the
// peer merely announces. Lengths from frame headers go through checked
// arithmetic; a message buffer is allocated in proportion to the bytes
// that have arrived (at most sixteen times them, plus a read buffer) and
// grows geometrically, so no fragmentation pattern costs more than linear
// time. Handshakes are bounded too: an Upgrader relies on net/http's
// limits for the request (http.Server's MaxHeaderBytes, 1 MiB by default,
// and ReadHeaderTimeout, which a server facing the Internet should set); a
// Dialer reads at most Dialer.MaxResponseHeaderBytes (1 MiB by default) of
// the response; header lists are scanned in place, an extension element
// keeps at most 8 parameters, and a server considers at most 16 extension
// offers. Frame lengths must be in their minimal encoding, and
// Sec-WebSocket-Key and Sec-WebSocket-Version may appear only once. The
// repository's hostile-input suite (hostile_test.go) and FuzzConnStream
// pin all of this. A frame that breaks the protocol fails the
// connection: the library sends a close frame with the code RFC 6455 asks
// for (1002 for a malformed frame, 1007 for invalid UTF-8, 1009 for a
// message over the read limit), closes the TCP connection, and the read
// returns a *ProtocolError (or ErrReadLimit). Text is validated as it
// arrives, so a message with invalid UTF-8 fails at the fragment that
// carries the bad bytes. A peer that disappears without a close frame
// yields a *CloseError with code CloseAbnormalClosure. Read errors are
// permanent. Errors of the network connection itself (a deadline that
// passed, a reset, a closed connection) are returned as the net package
// reports them from a net.Conn, *net.OpError and all: an expired read
// deadline reads "read tcp A->B: i/o timeout", as with gorilla, whether
// the Conn was waiting between messages or inside one.
//
// # Origin checks
//
// By default Upgrader rejects a cross-origin request (an Origin header whose
// host differs from the request's Host) with 403. Set CheckOrigin to allow
// other origins.
//
// # Compression
//
// Setting EnableCompression on an Upgrader or a Dialer negotiates
// permessage-deflate (RFC 7692) when the peer agrees. Unlike gorilla, both
// directions keep their LZ77 window between messages (context takeover)
// unless a side asks otherwise, which is what makes small, similar messages
// (chat lines, JSON updates) compress well; window sizes
// (server_max_window_bits, client_max_window_bits) are negotiated and
// honoured. CompressionOptions (the Compression field of Upgrader and
// Dialer) sets the level, a size below which messages go uncompressed (64
// bytes by default), and takeover and window size per direction.
//
// Once negotiated, text and binary messages of at least the threshold are
// compressed; EnableWriteCompression and SetCompressionLevel change that per
// connection at any time. Received messages are inflated transparently, and
// the read limit applies to their inflated size, checked as they inflate.
// Conn.Extensions tells whether compression is on for a connection, and
// with which parameters: it returns the server's Sec-WebSocket-Extensions
// answer, such as "permessage-deflate", or "" when none was negotiated.
//
// Memory: with context takeover a connection keeps its compressor's history
// (7/8 of the window) and the window it inflates against, 60 KiB at the
// default 32 KiB windows; while it sends it also holds its compressor's
// match index (32 KiB at the defaults), dropped after a second or two
// without a message. Without takeover it keeps nothing between messages.
// Working memory is pooled and held only while a message is being
// compressed or inflated.
//
// # Engine
//
// An Engine serves many connections without a goroutine each. Engine.Upgrade
// upgrades a request as Upgrader.Upgrade does and hands the connection to
// one of a few event loops (on Linux, epoll; elsewhere a goroutine per
// connection behind the same API); the HTTP handler then returns. The
// loop calls an EventHandler: OnOpen, OnMessage with each whole message,
// OnClose once at the end. OnMessage's data is valid only during the call
// (it may be the loop's read buffer itself); copy it to keep it. Handler
// methods run on the loop and must not block.
//
// The Conn's write methods work from the handler and from any goroutine
// and never block: what the socket does not take at once is queued for
// the loop, up to EngineOptions.MaxQueuedBytes, past which a write fails
// with ErrWriteQueueFull and the connection's data writes stay failed.
// NextReader and ReadMessage fail on such a Conn: its messages go to the
// handler. SetReadDeadline works (a timer ends the connection with a
// timeout error); write deadlines have nothing to bound. Compression is
// negotiated as the Upgrader says; a compressed message is gathered whole
// and then inflated, the read limit bounding its inflated size.
//
// An Engine checks that its peers are alive without a timer per
// connection: its loops visit their connections in turn, a slice at a
// time, and ping one that has been quiet for EngineOptions.PingInterval
// (one minute unless set); one still silent an interval later is closed
// with CloseInternalServerErr and OnClose receives ErrKeepAliveTimeout.
// The kernel's TCP keepalive is off on its sockets unless
// EngineOptions.TCPKeepAlive asks for it. A keepalive the application
// sets (Upgrader.KeepAlive, SetKeepAlive) replaces the Engine's pings
// for that connection.
//
// # Tunnelling TCP protocols: NetConn
//
// NetConn(ctx, c, messageType) returns a net.Conn over a Conn, for
// protocols written for TCP (gRPC, SSH, a database's wire protocol,
// net/rpc, HTTP/1.1): each Write sends one message, Read returns the
// messages' bytes as one stream, the peer's close with 1000 reads as
// io.EOF, and Close runs the closing handshake with 1000. Its deadlines
// behave as a net.Conn's: a Read that times out leaves the stream intact
// (a deadline set on the Conn itself would end its reads for good), which
// is what lets net/http's server, which interrupts a read with a past
// deadline after each request, keep connections alive over it. To give
// that, a NetConn reads through one goroutine of its own, started by its
// first Read and ended with the connection. ctx bounds the NetConn's
// whole life: once it is done the connection is failed with close 1001.
// A message of the other data type fails the connection with 1003 and a
// *MessageTypeError.
//
// # WebSockets over HTTP/2
//
// Upgrader.Upgrade also accepts a WebSocket opened over HTTP/2 (RFC
// 8441): an extended CONNECT request whose :protocol is "websocket",
// which browsers send on an HTTP/2 connection they already have when the
// server announced SETTINGS_ENABLE_CONNECT_PROTOCOL. Go's HTTP/2 server
// announces it and lets such requests in only when the process starts
// with GODEBUG=http2xconnect=1 (it reads the variable once, at start-up),
// over TLS or, with http.Server.Protocols, in clear text (h2c). The
// version, origin, subprotocol and permessage-deflate checks are those of
// HTTP/1.1; the answer is 200 without Sec-WebSocket-Accept, and
// IsWebSocketUpgrade reports true for such a request. The Conn reads the
// request body and writes through the ResponseWriter, flushing each write,
// so everything else behaves as over TCP; deadlines and contexts too (a
// read that timed out waiting for a message can be retried, which
// HTTP/2's own stream deadlines do not allow).
//
// The difference is the handler: nothing is hijacked, and the stream
// lives only as long as the handler that upgraded it runs. The handler
// must not return while the Conn is in use (the pattern of starting the
// connection's goroutines and returning, fine over HTTP/1.1, ends the
// stream at once); Close stops the stream's reads and writes, and the
// handler's return then ends the stream cleanly (END_STREAM), leaving the
// HTTP/2 connection and its other streams alone. An Engine does not serve
// such requests (501). Upgrader.DisableHTTP2 refuses them (405). There is
// no client side: net/http's Transport does not send extended CONNECT.
//
// # Differences from gorilla
//
// The exported API is gorilla's, with additions only: concurrent writers
// and EnableConcurrentWriters (above), CloseGracefully, CompressionOptions,
// the Engine, NetConn, keepalive (KeepAlive, SetKeepAlive,
// ErrKeepAliveTimeout), WebSockets over HTTP/2 (Upgrader.DisableHTTP2),
// Conn.Extensions, Dialer.MaxResponseHeaderBytes with
// ErrResponseHeaderTooLarge, and *ProtocolError. The read methods return
// *CloseError values unwrapped, so type assertions keep working, and
// IsCloseError and IsUnexpectedCloseError also see wrapped ones. A request
// that pipelines frames behind its upgrade request is accepted and the
// frames are read (gorilla refuses it), and an unsupported
// Sec-WebSocket-Version is answered with 426 as RFC 6455 asks (gorilla
// answers 400). Where RFC 6455 says MUST and gorilla is lenient, this
// package is strict: a repeated Sec-WebSocket-Key or Sec-WebSocket-Version
// gets 400, a repeated Sec-WebSocket-Accept fails the dial, and a frame
// length not in its minimal encoding fails the connection with 1002. A
// pong or close reply that times out before sending a byte leaves the
// connection writable, where gorilla fails every later write.
package websocket
