package main

import (
	"bytes"
	"compress/flate"
	"fmt"
	"strings"
)

var (
	// wireRatio is the payload bytes of the server's echoes over the
	// uncompressed size of the messages echoed.
	wireRatio = func(res result) (float64, bool) {
		if res.PlainBytes <= 0 {
			return 0, false
		}
		return float64(res.WireBytes) / float64(res.PlainBytes), true
	}
	compressedPct = perOp(func(res result) float64 { return float64(res.Compressed) * 100 })
	framesPerMsg  = perOp(func(res result) float64 { return float64(res.Frames) })
)

// ratio3 formats a median with three decimals.
func (r *report) ratio3(k cellKey, m metric) string {
	s := r.stat(k, m)
	if s.n == 0 {
		return r.missing(k)
	}
	return fmt.Sprintf("%.3f", s.median)
}

// negotiated returns what the server answered in k's runs: its extension
// header and whether it kept context takeover ("" when no run said).
func (r *report) negotiated(k cellKey) (ext, takeover string) {
	for _, res := range r.results[k] {
		if res.Err != "" {
			continue
		}
		ext = res.Extensions
		if ok, _ := pmdResponse(ext); !ok {
			return ext, "none"
		}
		if res.Takeover {
			return ext, "yes"
		}
		return ext, "no"
	}
	return "", ""
}

// corpusReference returns the ratio compress/flate achieves on a corpus at
// level, compressing every message on its own or (takeover) as one stream
// with a sync flush after each message, as a server with context takeover
// does.
func corpusReference(corpus [][]byte, level int, takeover bool) float64 {
	var plain, out int
	var stream bytes.Buffer
	sw, err := flate.NewWriter(&stream, level)
	if err != nil {
		return 0
	}
	if !takeover {
		c, err := compressMessages(corpus, level)
		if err != nil {
			return 0
		}
		for i := range c {
			plain += len(corpus[i])
			out += len(c[i])
		}
		return float64(out) / float64(plain)
	}
	for _, m := range corpus {
		plain += len(m)
		before := stream.Len()
		_, _ = sw.Write(m)
		_ = sw.Flush()
		out += stream.Len() - before - len(deflateTail)
	}
	return float64(out) / float64(plain)
}

func modeLabel(mode string) string {
	switch mode {
	case modePlain:
		return "none"
	case modeTakeover:
		return "takeover"
	case modeNoTakeover:
		return "no takeover"
	case modeSmallWindows:
		return "takeover, 10-bit windows"
	}
	return mode
}

func (r *report) deflateMarkdown(b *strings.Builder, p planned) {
	t := table{b}
	b.WriteString("## permessage-deflate\n\n")
	var echo, idle []cell
	for _, c := range p.cells {
		if c.suite == "deflate-idle" {
			idle = append(idle, c)
		} else {
			echo = append(echo, c)
		}
	}
	b.WriteString("The common raw client offers permessage-deflate with context takeover (`" + modeOffer(modeTakeover) +
		"`, what browsers send) or without it (`" + modeOffer(modeNoTakeover) + "`). It sends each corpus message " +
		"compressed on its own with compress/flate level 1 (precompressed once, masked with a fixed key), cycling " +
		"through the corpus, and counts the payload bytes of the server's echoes: wire/payload is the server " +
		"library's compression ratio. Connection 0 of every run inflates every echo, keeping the server's history " +
		"when the server kept it, and compares it with the message sent; a mismatch fails the run.\n\n")
	b.WriteString(fmt.Sprintf("Servers: wsforge and wsforge-stream `Upgrader{EnableCompression: true}` with default options; "+
		"gws `PermessageDeflate{Enabled: true, ServerContextTakeover, ClientContextTakeover}` set to the offer's takeover; "+
		"coder `CompressionContextTakeover` or `CompressionNoContextTakeover`; gorilla `EnableCompression: true` "+
		"(it never keeps context, so it answers the takeover offer without it). gws and coder get a compression "+
		"threshold of %d bytes, wsforge's default (gws ignores it under takeover and compresses everything): theirs (gws 512 without takeover, coder 512 without and 128 with) "+
		"would leave the ~200 B messages uncompressed in some cells. Every ~4 KiB message is above all defaults, so "+
		"the ~4 KiB cells run every library at its defaults. All use their default compression level: 1, except wsforge under context takeover, whose default there is 2. "+
		"Messages are binary frames; gobwas is left out (its compression needs wsflate wiring).\n\n", deflateThreshold))

	b.WriteString("Corpus: deterministic JSON from a seeded PRNG, 256 distinct messages per kind; successive messages share " +
		"keys and structure but not values (ids, names, e-mails, ISO timestamps, prices, UUIDs), so context takeover " +
		"finds the keys in its history without ever seeing a repeat. \"api\" is a REST response listing user records " +
		"(nested address, tags, stats), as many as fit in 4096 bytes; \"chat\" mixes trade prints (half), chat " +
		"messages and presence updates. For reference, the last columns are the ratios compress/flate achieves on " +
		"it, compressing each message alone or as one stream with a sync flush per message (context takeover). Its " +
		"level 1 looks back only into the previous flush's input (here the previous message), unlike its level 6.\n\n")
	t.head("corpus", "messages", "mean bytes", "min", "max", "flate 1, alone", "flate 1, takeover", "flate 6, takeover")
	for _, name := range corpusNames {
		c, err := makeCorpus(name)
		if err != nil {
			continue
		}
		mean, lo, hi := corpusStats(c)
		t.row(name+" ("+corpusLabel(name)+")", fmt.Sprint(len(c)), fmt.Sprintf("%.0f", mean), fmt.Sprint(lo), fmt.Sprint(hi),
			fmt.Sprintf("%.3f", corpusReference(c, flate.BestSpeed, false)),
			fmt.Sprintf("%.3f", corpusReference(c, flate.BestSpeed, true)),
			fmt.Sprintf("%.3f", corpusReference(c, flate.DefaultCompression, true)))
	}
	b.WriteString("\n")

	if len(echo) > 0 {
		fmt.Fprintf(b, "### Compressed echo, %d connections\n\n", echo[0].conns)
		b.WriteString("offer: what the client asked for; takeover: whether the server kept its compression context " +
			"(no server_no_context_takeover in its answer). wire/payload: echo payload bytes over message bytes " +
			"(frame headers excluded); compressed: share of echoes with RSV1; frames/msg: data frames per echo. " +
			"Server CPU is compared with coder's in the takeover cells and with gws's in the others.\n\n")
		t.head("corpus", "offer", "library", "takeover", "msgs/s", "spread", "server µs/msg", "spread", "server allocs/msg",
			"wire/payload", "compressed", "frames/msg", "server CPU vs coder (takeover) / gws (no takeover)")
		for _, c := range echo {
			base := "gws"
			if c.mode == modeTakeover {
				base = "coder"
			}
			for _, lib := range p.libsOf(c) {
				k := cellKey{c, lib}
				_, tk := r.negotiated(k)
				vs := r.ratioTo(k, serverUs, base)
				if vs != "–" && lib != base {
					vs += " " + base
				} else if lib == base {
					vs = "1.00×"
				}
				t.row(corpusLabel(c.corpus), modeLabel(c.mode), lib, tk, r.val(k, opsPerSec), r.spread(k, opsPerSec),
					r.val(k, serverUs), r.spread(k, serverUs), r.val(k, serverAllocs), r.ratio3(k, wireRatio),
					r.pct(k, compressedPct), r.val(k, framesPerMsg), vs)
			}
		}
		b.WriteString("\n")
		b.WriteString("Negotiated (the server's Sec-WebSocket-Extensions answer to each offer):\n\n")
		for _, lib := range p.libs {
			var parts []string
			seen := map[string]bool{}
			for _, c := range p.cells {
				if seen[c.mode] || c.mode == modePlain {
					continue
				}
				ext, _ := r.negotiated(cellKey{c, lib})
				if len(r.results[cellKey{c, lib}]) == 0 {
					continue
				}
				seen[c.mode] = true
				if ext == "" {
					ext = "(none)"
				}
				parts = append(parts, fmt.Sprintf("%s → `%s`", modeLabel(c.mode), ext))
			}
			if len(parts) > 0 {
				fmt.Fprintf(b, "- %s: %s\n", lib, strings.Join(parts, "; "))
			}
		}
		b.WriteString("\n")
	}

	if len(idle) > 0 {
		fmt.Fprintf(b, "### Idle connections with compression history, %d connections\n\n", idle[0].conns)
		b.WriteString("Each connection makes the offer shown, sends one ~4 KiB api message (compressed Huffman-only where " +
			"negotiated, so that it is valid under any window) and checks its echo, so both directions have " +
			"compression history; then all sit idle for 2.5 s (wsforge drops its compressor's match index after 1–2 s without a message). Memory is measured as in the idle suite (server HeapInuse+StackInuse " +
			"after runtime.GC(), minus the same before any connection, per connection). \"none\" is the same traffic " +
			"without the extension; the last column is the difference from it, i.e. what a compressing connection " +
			"holds while idle.\n\n")
		t.head("library", "offer", "takeover", "KiB/conn (heap+stack)", "spread", "heap KiB/conn", "stack KiB/conn", "goroutines/conn", "vs no extension")
		plainOf := map[string]stat{}
		for _, c := range idle {
			if c.mode == modePlain {
				for _, lib := range p.libsOf(c) {
					plainOf[lib] = r.stat(cellKey{c, lib}, memKiB)
				}
			}
		}
		for _, lib := range p.libs {
			for _, c := range idle {
				if !contains(p.libsOf(c), lib) {
					continue
				}
				k := cellKey{c, lib}
				_, tk := r.negotiated(k)
				if c.mode == modePlain {
					tk = "–"
				}
				diff := "–"
				if s, base := r.stat(k, memKiB), plainOf[lib]; c.mode != modePlain && s.n > 0 && base.n > 0 {
					diff = fmt.Sprintf("%+.1f KiB", s.median-base.median)
				}
				t.row(lib, modeLabel(c.mode), tk, r.val(k, memKiB), r.spread(k, memKiB), r.val(k, heapKiB),
					r.val(k, stackKiB), r.val(k, goroutine), diff)
			}
		}
		b.WriteString("\n")
		var notes []string
		for _, c := range idle {
			if c.mode == modePlain {
				continue
			}
			for _, lib := range p.libsOf(c) {
				if ext, _ := r.negotiated(cellKey{c, lib}); ext != "" {
					notes = append(notes, fmt.Sprintf("%s, %s → `%s`", lib, modeLabel(c.mode), ext))
				}
			}
		}
		if len(notes) > 0 {
			b.WriteString("Negotiated: " + strings.Join(notes, "; ") + ". The 10-bit offer is `" + modeOffer(modeSmallWindows) + "`.\n\n")
		}
	}
}
