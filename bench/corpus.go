package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// The deflate suite's payloads: realistic JSON, generated from a seeded
// PRNG so that every run and every library sees the same bytes. Successive
// messages of a corpus share their structure (keys, enum values, the shape
// of timestamps) but not their values, as consecutive messages on a real
// connection do: context takeover finds the keys in its history but has to
// code ids, names, prices and times afresh.

const (
	// corpusMessages is how many distinct messages a corpus holds. A
	// connection cycles through them in order; 256 of either kind exceed
	// a 32 KiB window, so no message is ever a repeat of one still in the
	// compressor's history.
	corpusMessages = 256

	// corpusAPIMax bounds an API message: 4096 bytes keeps every
	// back-reference the client's compressor makes inside a 12-bit window,
	// the smallest a server here asks the client for (gws).
	corpusAPIMax = 4096
)

// corpusNames lists the corpora, by the name the -corpus flag takes.
var corpusNames = []string{"api", "chat"}

// corpusLabel describes a corpus in tables.
func corpusLabel(name string) string {
	switch name {
	case "api":
		return "~4 KiB API JSON"
	case "chat":
		return "~200 B chatty JSON"
	}
	return name
}

// makeCorpus returns the named corpus: "api" (~4 KiB REST responses) or
// "chat" (~200 B trade, chat and presence updates).
func makeCorpus(name string) ([][]byte, error) {
	switch name {
	case "api":
		return apiCorpus(), nil
	case "chat":
		return chatCorpus(), nil
	}
	return nil, fmt.Errorf("unknown corpus %q (known: %s)", name, strings.Join(corpusNames, ","))
}

var (
	firstNames = []string{"Olivia", "Liam", "Emma", "Noah", "Amelia", "Oliver", "Ava", "Elijah", "Sophia", "Lucas",
		"Mia", "Mateo", "Isabella", "Levi", "Charlotte", "Ethan", "Harper", "James", "Evelyn", "Hiroshi",
		"Priya", "Chen", "Fatima", "Lars", "Zoe", "Diego", "Anika", "Kwame", "Ingrid", "Tomasz"}
	lastNames = []string{"Smith", "Johnson", "Garcia", "Müller", "Rossi", "Nguyen", "Kowalski", "Silva", "Tanaka",
		"Brown", "Martinez", "Dubois", "Okafor", "Jensen", "Patel", "Kim", "Andersson", "Novak", "Lopez", "Wilson",
		"Schmidt", "Moreau", "Ivanova", "Hughes", "Costa"}
	mailDomains = []string{"example.com", "mail.example.org", "corp.example.net", "example.io"}
	cities      = []struct{ city, country, tz string }{
		{"Berlin", "DE", "Europe/Berlin"}, {"Lisbon", "PT", "Europe/Lisbon"}, {"Austin", "US", "America/Chicago"},
		{"Toronto", "CA", "America/Toronto"}, {"Osaka", "JP", "Asia/Tokyo"}, {"Lagos", "NG", "Africa/Lagos"},
		{"Kraków", "PL", "Europe/Warsaw"}, {"São Paulo", "BR", "America/Sao_Paulo"}, {"Pune", "IN", "Asia/Kolkata"},
		{"Seattle", "US", "America/Los_Angeles"}, {"Lyon", "FR", "Europe/Paris"}, {"Melbourne", "AU", "Australia/Melbourne"},
	}
	streets = []string{"Main St", "Oak Avenue", "Hauptstraße", "Rue de la Paix", "Maple Drive", "Station Road",
		"Via Roma", "Elm Street", "Market Square", "Harbour View"}
	roles  = []string{"admin", "member", "viewer", "owner", "billing"}
	plans  = []string{"free", "pro", "team", "enterprise"}
	tags   = []string{"beta", "vip", "churn-risk", "trial", "newsletter", "sso", "mfa", "api", "mobile", "eu", "us", "partner"}
	words  = strings.Fields("the a to and of in for on is that it with this you we be are at have not can do will just so if about what get all but your deploy build failed passed merge review meeting lunch today tomorrow later ok thanks sure great looks good need help issue ticket release fixed broken again please check link docs price chart up down market order")
	rooms  = []string{"general", "random", "eng-backend", "eng-frontend", "support", "sales", "ops-alerts"}
	symbol = []struct {
		name  string
		price float64
	}{{"BTC-USD", 43125}, {"ETH-USD", 2280}, {"SOL-USD", 98.4}, {"EUR-USD", 1.0871}, {"AAPL", 189.3}, {"TSLA", 241.1}}
	devices  = []string{"ios", "android", "web", "desktop"}
	statuses = []string{"online", "away", "busy", "offline"}
)

// corpusEpoch is the first timestamp of both corpora.
var corpusEpoch = time.Date(2024, 3, 14, 9, 26, 53, 0, time.UTC)

// marshal is json.Marshal without HTML escaping (so a URL keeps its "&"),
// as most API servers send JSON.
func marshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

func hexID(r *rand.Rand, n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[r.IntN(16)]
	}
	return string(b)
}

type apiAddress struct {
	Street   string `json:"street"`
	City     string `json:"city"`
	Postcode string `json:"postcode"`
	Country  string `json:"country"`
	Timezone string `json:"timezone"`
}

type apiStats struct {
	Logins      int     `json:"logins"`
	Sessions30d int     `json:"sessions_30d"`
	Score       float64 `json:"score"`
	Balance     float64 `json:"balance"`
	StorageMB   int     `json:"storage_mb"`
}

type apiUser struct {
	ID          int64      `json:"id"`
	UUID        string     `json:"uuid"`
	Name        string     `json:"name"`
	Email       string     `json:"email"`
	Role        string     `json:"role"`
	Active      bool       `json:"active"`
	CreatedAt   string     `json:"created_at"`
	LastLoginAt string     `json:"last_login_at"`
	Address     apiAddress `json:"address"`
	Plan        string     `json:"plan"`
	Tags        []string   `json:"tags"`
	Stats       apiStats   `json:"stats"`
}

type apiPage struct {
	Page      int    `json:"page"`
	PerPage   int    `json:"per_page"`
	Total     int    `json:"total"`
	NextURL   string `json:"next"`
	RequestID string `json:"request_id"`
}

// apiResponse is one API message: a page of user records, each already
// marshalled.
type apiResponse struct {
	Status      string            `json:"status"`
	GeneratedAt string            `json:"generated_at"`
	Data        []json.RawMessage `json:"data"`
	Pagination  apiPage           `json:"pagination"`
}

const isoMillis = "2006-01-02T15:04:05.000Z07:00"

// apiCorpus builds REST-style responses listing user records, each as many
// records as fit in corpusAPIMax bytes (3.5 to 4 KiB).
func apiCorpus() [][]byte {
	r := rand.New(rand.NewPCG(1, 7692))
	id := int64(1_048_576)
	now := corpusEpoch
	out := make([][]byte, corpusMessages)
	for m := range out {
		now = now.Add(time.Duration(200+r.IntN(5000)) * time.Millisecond)
		resp := apiResponse{
			Status:      "ok",
			GeneratedAt: now.Format(isoMillis),
			Pagination: apiPage{Page: m + 1, PerPage: 0, Total: 18_000 + r.IntN(2000),
				RequestID: "req_" + hexID(r, 24)},
		}
		// Records are marshalled one by one and spliced into the response:
		// re-marshalling the whole response per record would make this
		// quadratic, which the race-instrumented test run feels.
		cursor := hexID(r, 16)
		next := func(n int) string {
			return fmt.Sprintf("https://api.example.com/v2/users?cursor=%s&limit=%d", cursor, n)
		}
		resp.Pagination.PerPage, resp.Pagination.NextURL = 99, next(99)
		env := marshal(resp)
		// The records replace "null" with "[...]".
		size := len(env) - len("null") + len("[]")
		var users []json.RawMessage
		for {
			id += int64(1 + r.IntN(40))
			first, last := pick(r, firstNames), pick(r, lastNames)
			c := pick(r, cities)
			created := now.Add(-time.Duration(r.Int64N(3*365*24*3600*1000)) * time.Millisecond)
			u := apiUser{
				ID: id, UUID: hexID(r, 8) + "-" + hexID(r, 4) + "-4" + hexID(r, 3) + "-" + hexID(r, 4) + "-" + hexID(r, 12),
				Name:        first + " " + last,
				Email:       strings.ToLower(first) + "." + strings.ToLower(last) + fmt.Sprint(r.IntN(100)) + "@" + pick(r, mailDomains),
				Role:        pick(r, roles),
				Active:      r.IntN(10) > 1,
				CreatedAt:   created.Format(isoMillis),
				LastLoginAt: now.Add(-time.Duration(r.Int64N(30*24*3600*1000)) * time.Millisecond).Format(isoMillis),
				Address: apiAddress{Street: fmt.Sprintf("%d %s", 1+r.IntN(299), pick(r, streets)), City: c.city,
					Postcode: fmt.Sprintf("%05d", r.IntN(100000)), Country: c.country, Timezone: c.tz},
				Plan: pick(r, plans),
				Stats: apiStats{Logins: r.IntN(5000), Sessions30d: r.IntN(120), Score: float64(r.IntN(10000)) / 100,
					Balance: float64(r.IntN(5_000_000)) / 100, StorageMB: r.IntN(20000)},
			}
			u.Tags = []string{}
			for n := r.IntN(4); n > 0; n-- {
				if t := pick(r, tags); !slices.Contains(u.Tags, t) {
					u.Tags = append(u.Tags, t)
				}
			}
			b := marshal(u)
			if size+len(b)+btoi(len(users) > 0) > corpusAPIMax && len(users) > 0 {
				break
			}
			size += len(b) + btoi(len(users) > 0)
			users = append(users, b)
		}
		var msg []byte
		for {
			resp.Pagination.PerPage, resp.Pagination.NextURL = len(users), next(len(users))
			resp.Data = users
			msg = marshal(resp)
			if len(msg) <= corpusAPIMax || len(users) == 1 {
				break
			}
			users = users[:len(users)-1]
		}
		out[m] = msg
	}
	return out
}

type chatTrade struct {
	Type     string `json:"type"`
	Channel  string `json:"channel"`
	Exchange string `json:"exchange"`
	Symbol   string `json:"symbol"`
	TradeID  int64  `json:"trade_id"`
	Price    string `json:"price"`
	Qty      string `json:"qty"`
	Side     string `json:"side"`
	Maker    bool   `json:"maker"`
	TS       string `json:"ts"`
	Seq      int64  `json:"seq"`
}

type chatUser struct {
	ID     int64  `json:"id"`
	Name   string `json:"name"`
	Avatar string `json:"avatar"`
}

type chatMessage struct {
	Type   string   `json:"type"`
	Room   string   `json:"room"`
	ID     string   `json:"id"`
	User   chatUser `json:"user"`
	Text   string   `json:"text"`
	TS     string   `json:"ts"`
	Edited bool     `json:"edited"`
}

type chatPresence struct {
	Type     string `json:"type"`
	UserID   int64  `json:"user_id"`
	Status   string `json:"status"`
	Device   string `json:"device"`
	Client   string `json:"client"`
	LastSeen string `json:"last_seen"`
	Typing   bool   `json:"typing"`
	Room     string `json:"room"`
	Seq      int64  `json:"seq"`
}

// chatCorpus builds a mixed stream of small updates: trades (half), chat
// messages and presence changes, 168 to 265 bytes each.
func chatCorpus() [][]byte {
	r := rand.New(rand.NewPCG(2, 7692))
	prices := make([]float64, len(symbol))
	for i, s := range symbol {
		prices[i] = s.price
	}
	now := corpusEpoch
	tradeID, seq := int64(7_310_442_918), int64(90_211)
	out := make([][]byte, corpusMessages)
	for m := range out {
		now = now.Add(time.Duration(1+r.IntN(900)) * time.Millisecond)
		seq += int64(1 + r.IntN(3))
		var v any
		switch k := r.IntN(4); {
		case k < 2:
			i := r.IntN(len(symbol))
			prices[i] *= 1 + (r.Float64()-0.5)*0.002
			tradeID += int64(1 + r.IntN(50))
			side := "buy"
			if r.IntN(2) == 0 {
				side = "sell"
			}
			v = chatTrade{Type: "trade", Channel: "trades", Exchange: "example-x", Symbol: symbol[i].name, TradeID: tradeID,
				Price: fmt.Sprintf("%.*f", 2+2*btoi(prices[i] < 10), prices[i]),
				Qty:   fmt.Sprintf("%.4f", r.Float64()*3), Side: side, Maker: r.IntN(2) == 0,
				TS: now.Format(isoMillis), Seq: seq}
		case k == 2:
			n := 3 + r.IntN(9)
			text := make([]string, n)
			for j := range text {
				text[j] = pick(r, words)
			}
			uid := 10_000 + r.Int64N(90_000)
			v = chatMessage{Type: "message", Room: pick(r, rooms), ID: "m_" + hexID(r, 12),
				User: chatUser{ID: uid, Name: pick(r, firstNames) + " " + pick(r, lastNames)[:1] + ".",
					Avatar: fmt.Sprintf("https://cdn.example.com/avatars/%d.png", uid)},
				Text: strings.Join(text, " "), TS: now.Format(isoMillis), Edited: r.IntN(20) == 0}
		default:
			dev := pick(r, devices)
			v = chatPresence{Type: "presence", UserID: 10_000 + r.Int64N(90_000), Status: pick(r, statuses),
				Device: dev, Client: fmt.Sprintf("%s/2.%d.%d", dev, 28+r.IntN(4), r.IntN(10)),
				LastSeen: now.Add(-time.Duration(r.IntN(600_000)) * time.Millisecond).Format(isoMillis),
				Typing:   r.IntN(5) == 0, Room: pick(r, rooms), Seq: seq}
		}
		out[m] = marshal(v)
	}
	return out
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// corpusStats returns the mean, smallest and largest message size.
func corpusStats(c [][]byte) (mean float64, lo, hi int) {
	lo = int(^uint(0) >> 1)
	total := 0
	for _, m := range c {
		total += len(m)
		lo, hi = min(lo, len(m)), max(hi, len(m))
	}
	return float64(total) / float64(len(c)), lo, hi
}
