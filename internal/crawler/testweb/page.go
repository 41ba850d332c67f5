package testweb

import (
	"fmt"
	"html"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Answer is what a host answers at a path.
type Answer struct {
	Status      int
	ContentType string
	Location    string        // for redirects
	Body        []byte        // nil for the endless and the huge page
	Delay       time.Duration // before the answer starts
	Endless     bool          // a body that never ends
	HugeBytes   int           // a generated body of this size
}

// Hazards are the paths of the hazards page, each a way a crawl goes
// wrong.
var Hazards = []string{
	"/dup/0.html",        // the same bytes as /p/0.html
	"/near/1.html",       // /p/1.html with a few words changed
	"/r/3",               // 301 → /r/2 → /r/1 → /r/0 → /p/0.html
	"/loop/a",            // 302 → /loop/b → /loop/a …
	"/missing.html",      // 404
	"/error.html",        // 500
	"/slow.html",         // answers after Config.Slow
	"/stream.html",       // a body that never ends
	"/file.pdf",          // not HTML
	"/huge.html",         // Config.HugeBytes of HTML
	"/calendar/2026/01/", // a trap: every month links the next and the previous
}

// Answer is host i's answer at path (path and query, as requested).
func (w *Web) Answer(i int, path string) Answer {
	if path == "/robots.txt" {
		switch w.RobotsOf(i) {
		case RobotsMissing:
			return notFound()
		case RobotsError:
			return Answer{Status: 500, ContentType: "text/plain", Body: []byte("robots: internal error\n")}
		case RobotsTimeout:
			return Answer{Status: 200, ContentType: "text/plain", Delay: w.cfg.Slow, Body: []byte(w.robotsTxt(i))}
		}
		return Answer{Status: 200, ContentType: "text/plain", Body: []byte(w.robotsTxt(i))}
	}
	if path == "/" {
		return w.page(i, -1, "")
	}
	if j, ok := number(path, "/p/", ".html"); ok && j < w.cfg.PagesPerHost {
		return w.page(i, j, "")
	}
	if j, ok := number(path, "/private/", ".html"); ok {
		return htmlAnswer(fmt.Sprintf("<html><head><title>Private %d</title></head><body><p>%s</p></body></html>", j, "not for crawlers"))
	}
	if !w.Hazardous(i) {
		return notFound()
	}
	switch {
	case path == "/hazards.html":
		var b strings.Builder
		b.WriteString("<html><head><title>Hazards</title></head><body>")
		for _, h := range Hazards {
			fmt.Fprintf(&b, `<a href="%s">%s</a> `, h, h)
		}
		// A name that resolves to 127.0.0.1: an SSRF guard refuses it.
		fmt.Fprintf(&b, `<a href="http://%s:%d/secret">internal</a>`, InternalName, w.port)
		b.WriteString("</body></html>")
		return htmlAnswer(b.String())
	case path == "/loop/a":
		return redirect(302, "/loop/b")
	case path == "/loop/b":
		return redirect(302, "/loop/a")
	case path == "/missing.html":
		return notFound()
	case path == "/error.html":
		return Answer{Status: 500, ContentType: "text/html", Body: []byte("<html><body>error</body></html>")}
	case path == "/slow.html":
		a := w.page(i, 0, "")
		a.Delay = w.cfg.Slow
		return a
	case path == "/stream.html":
		return Answer{Status: 200, ContentType: "text/html", Endless: true}
	case path == "/file.pdf":
		return Answer{Status: 200, ContentType: "application/pdf", Body: []byte("%PDF-1.4\n% not a real document\n")}
	case path == "/huge.html":
		return Answer{Status: 200, ContentType: "text/html", HugeBytes: w.cfg.HugeBytes}
	}
	if j, ok := number(path, "/dup/", ".html"); ok && j < w.cfg.PagesPerHost {
		return w.page(i, j, "")
	}
	if j, ok := number(path, "/near/", ".html"); ok && j < w.cfg.PagesPerHost {
		return w.page(i, j, "near")
	}
	if n, ok := number(path, "/r/", ""); ok {
		if n == 0 {
			return redirect(301, "/p/0.html")
		}
		return redirect(301, "/r/"+strconv.Itoa(n-1))
	}
	if rest, ok := strings.CutPrefix(path, "/calendar/"); ok {
		return calendar(rest)
	}
	return notFound()
}

// page is ordinary page j (-1: the home page). A variant "near" changes a
// few words of its prose.
func (w *Web) page(i, j int, variant string) Answer {
	r := w.rng(i, "page/"+strconv.Itoa(j))
	langs := []string{"en", "en", "en", "de", "fr"}
	lang := langs[r.IntN(len(langs))]
	title := fmt.Sprintf("%s page %d", HostName(i), j)
	canonical := w.PageURL(i, j)
	if j < 0 {
		title, canonical = HostName(i)+" home", w.HomeURL(i)
	}
	words := strings.Fields(text(r, 120+r.IntN(200)))
	if variant == "near" {
		// One word changed, as a print version or a dated footer changes a
		// copy of a page.
		vr := rand.New(rand.NewPCG(uint64(i), uint64(j)))
		words[vr.IntN(len(words))] = "changed"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<!doctype html><html lang="%s"><head><title>%s</title>`, lang, html.EscapeString(title))
	fmt.Fprintf(&b, `<meta name="description" content="%s">`, html.EscapeString(strings.Join(words[:12], " ")))
	fmt.Fprintf(&b, `<link rel="canonical" href="%s"></head><body><h1>%s</h1><p>`, canonical, html.EscapeString(title))
	b.WriteString(strings.Join(words, " "))
	b.WriteString("</p><ul>")
	for k, l := range w.Links(i, j) {
		fmt.Fprintf(&b, `<li><a href="%s">link %d</a></li>`, spelling(l, w.Origin(i), k), k)
	}
	b.WriteString("</ul></body></html>")
	return htmlAnswer(b.String())
}

// spelling writes a link in one of the ways pages write links — relative,
// with a fragment, with the default port, in capitals — so that the
// crawler's normalisation is exercised on every page.
func spelling(abs, own string, k int) string {
	switch k % 5 {
	case 1:
		if p, ok := strings.CutPrefix(abs, own+"/"); ok {
			return "/" + p // root-relative
		}
	case 2:
		return abs + "#section-" + strconv.Itoa(k)
	case 3:
		host, path, _ := strings.Cut(strings.TrimPrefix(abs, "http://"), "/")
		return "HTTP://" + strings.ToUpper(host) + "/" + path
	case 4:
		if p, ok := strings.CutPrefix(abs, own+"/p/"); ok {
			return "../p/./" + p // relative with dot segments (every page is one level deep)
		}
	}
	return abs
}

// calendar is the trap: a month's page links the previous and the next
// month, for ever.
func calendar(rest string) Answer {
	parts := strings.Split(strings.Trim(rest, "/"), "/")
	if len(parts) != 2 {
		return notFound()
	}
	y, err1 := strconv.Atoi(parts[0])
	m, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil || y < 1 || y > 9999 || m < 1 || m > 12 {
		return notFound()
	}
	t := time.Date(y, time.Month(m), 1, 0, 0, 0, 0, time.UTC)
	prev, next := t.AddDate(0, -1, 0), t.AddDate(0, 1, 0)
	return htmlAnswer(fmt.Sprintf(`<html><head><title>Calendar %04d-%02d</title></head><body><a href="/calendar/%04d/%02d/">previous</a> <a href="/calendar/%04d/%02d/">next</a></body></html>`,
		y, m, prev.Year(), int(prev.Month()), next.Year(), int(next.Month())))
}

func number(path, prefix, suffix string) (int, bool) {
	rest, ok := strings.CutPrefix(path, prefix)
	if !ok {
		return 0, false
	}
	num, ok := strings.CutSuffix(rest, suffix)
	n, err := strconv.Atoi(num)
	if !ok || err != nil || n < 0 || strconv.Itoa(n) != num {
		return 0, false
	}
	return n, true
}

func htmlAnswer(s string) Answer {
	return Answer{Status: 200, ContentType: "text/html; charset=utf-8", Body: []byte(s)}
}

func notFound() Answer {
	return Answer{Status: 404, ContentType: "text/html", Body: []byte("<html><body>not found</body></html>")}
}

func redirect(status int, to string) Answer {
	return Answer{Status: status, Location: to, ContentType: "text/html", Body: []byte("<html><body>moved</body></html>")}
}
