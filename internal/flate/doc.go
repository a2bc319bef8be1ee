// Package flate is the DEFLATE (RFC 1951) codec of permessage-deflate
// (RFC 7692): an Encoder that compresses one direction's messages and a
// Decoder that inflates the other's, each with or without context
// takeover, within a window of 2^8 to 2^15 bytes.
//
// It knows nothing of sockets or WebSocket framing beyond RFC 7692's
// convention for a message: a DEFLATE stream cut after a sync flush,
// whose final four bytes (Tail) the sender removes and the receiver puts
// back. The Encoder's output is such a payload; the Decoder takes one,
// as runs of bytes from a function the caller supplies, and restores the
// tail itself.
//
// compress/flate serves neither side well here. A flate.Writer holds
// about 1 MB whether or not it is in use and cannot be reset onto a
// dictionary, so context takeover would pin that much per connection; a
// flate.Reader cannot be handed the window it should keep (each message
// would copy the 32 KiB dictionary in twice), pulls its input a byte at a
// time through an interface, and allocates its long-code tables for every
// dynamic block. The memory each side holds is described on Encoder and
// Decoder.
//
// Files: tables.go holds RFC 1951's tables for both directions;
// encoder.go the Encoder, its history and match index; match.go the
// match finders of each level; block.go the gathering of tokens into
// blocks and the choice of block type; huffman.go the construction of
// Huffman codes, for writing and for reading; bitwriter.go the output of
// blocks; decoder.go the Decoder and its input; inflate.go the decoding
// of blocks.
package flate
