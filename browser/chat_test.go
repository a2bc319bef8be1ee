package browser_test

import (
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
)

// join fills in the chat page's name and room and presses Join, then
// waits until the room's presence list shows the name.
func join(p *page, name, room string) {
	p.t.Helper()
	p.do(
		chromedp.SetValue(chromedp.CSS("#name"), name),
		chromedp.SetValue(chromedp.CSS("#room"), room),
		chromedp.Click(chromedp.CSS("#joinBtn")),
	)
	p.waitFor(`[...document.querySelectorAll("#users li")].some(li => li.textContent === `+jsString(name)+`)`,
		name+" in the presence list")
}

// users returns the presence list the page shows.
func users(p *page) []string {
	return eval[[]string](p, `[...document.querySelectorAll("#users li")].map(li => li.textContent)`)
}

// chatLines returns the chat messages in the page's log, without the
// status lines.
func chatLines(p *page) []string {
	return eval[[]string](p, `[...document.querySelectorAll("#log div:not(.status):not(.error)")].map(d => d.textContent)`)
}

func TestChatPages(t *testing.T) {
	ex := startExample(t, "chat", "-token", "s3cret")
	withToken := ex.url + "/?token=s3cret"
	ann := openPage(t, withToken, "ann")
	ben := openPage(t, withToken, "ben")
	cat := openPage(t, withToken, "cat")
	join(ann, "ann", "go")
	join(ben, "ben", "go")
	join(cat, "cat", "rust")
	ann.waitText("#users", "ben")
	assert.Equal(t, []string{"ann", "ben"}, users(ann))
	assert.Equal(t, []string{"ann", "ben"}, users(ben))
	assert.Equal(t, []string{"cat"}, users(cat))
	ann.waitText("#roomTitle", "In go (2)")

	// A message typed in one page appears in the other page of its room.
	ann.typeAndClick("#msg", "hello from ann", "#sendBtn")
	ben.waitText("#log", "ann: hello from ann")
	// and not in the other room: the hub handles messages one at a time,
	// so had ann's leaked into rust it would be in cat's log before
	// cat's own.
	cat.typeAndClick("#msg", "crab", "#sendBtn")
	cat.waitText("#log", "cat: crab")
	assert.Equal(t, []string{"cat: crab"}, chatLines(cat))
	ben.typeAndClick("#msg", "hi ann", "#sendBtn")
	ann.waitText("#log", "ben: hi ann")
	assert.Equal(t, []string{"ann: hello from ann", "ben: hi ann"}, chatLines(ann))

	// Closing a page takes its user out of the room's list.
	ben.close()
	ann.waitFor(`document.querySelectorAll("#users li").length === 1`, "ben to leave")
	assert.Equal(t, []string{"ann"}, users(ann))

	t.Run("wrong token", func(t *testing.T) {
		p := openPage(t, ex.url+"/?token=guess", "intruder")
		p.do(chromedp.SetValue(chromedp.CSS("#name"), "eve"), chromedp.Click(chromedp.CSS("#joinBtn")))
		p.waitText("#log", "Refused: wrong or missing token (HTTP 401).")
	})
	assert.Equal(t, []string{"ann"}, users(ann), "after the intruder")
	t.Run("bad room name", func(t *testing.T) {
		p := openPage(t, withToken, "bad room")
		p.do(chromedp.SetValue(chromedp.CSS("#room"), "Bad Room"), chromedp.Click(chromedp.CSS("#joinBtn")))
		p.waitText("#log", "Disconnected (1008: room name may use only a-z, 0-9, - and _).")
	})

	waitExit := ex.interrupt()
	ann.waitText("#log", "Disconnected (1001: server shutting down).")
	cat.waitText("#log", "Disconnected (1001: server shutting down).")
	waitExit()
}
