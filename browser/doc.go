// Package browser holds the real-browser tests of the examples: each test
// builds and starts an example as a user would, opens its own index.html
// in headless Chromium, uses the page's buttons and inputs and checks what
// the page shows. It is a module of its own so that the library's go.mod
// does not require chromedp. The package has no code outside its tests.
package browser
