package browser_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFilewatchPage(t *testing.T) {
	file := filepath.Join(t.TempDir(), "notes.txt")
	// Saved as editors do, in one rename, so that the poller never sees
	// a half-written file.
	save := func(content string) {
		tmp := file + ".tmp"
		require.NoError(t, os.WriteFile(tmp, []byte(content), 0o644))
		require.NoError(t, os.Rename(tmp, file))
	}
	save("first version\n")
	ex := startExample(t, "filewatch", "-file", file, "-period", "50ms")

	p := openPage(t, ex.url+"/", "filewatch")
	p.waitText("#content", "first version")
	p.waitText("#status", file+": 14 bytes")

	save("second version, longer\n")
	p.waitText("#content", "second version, longer")

	require.NoError(t, os.Remove(file))
	p.waitText("#status", file+": file not found")
	p.waitFor(`document.getElementById("status").className === "error"`, "the error style")

	save("third\n")
	p.waitText("#content", "third")
	p.waitFor(`document.getElementById("status").className === ""`, "the error style to go")

	waitExit := ex.interrupt()
	p.waitText("#status", "Disconnected (1001: server shutting down)")
	waitExit()
}
