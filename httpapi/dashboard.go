package httpapi

import (
	"embed"
	"io/fs"
	"net/http"

	"github.com/labstack/echo/v4"
)

// The dashboard: static files written in this project and embedded in the binary (no CDN,
// no build step), at / with its assets under /dashboard/. The page asks for the API token
// once, keeps it in the tab's session storage, reads the REST API and follows /ws.

//go:embed dashboard
var dashboardFiles embed.FS

// dashboardPolicy lets the page load only its own files and talk only to this node.
const dashboardPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

func (s *Server) dashboardRoutes() {
	sub, err := fs.Sub(dashboardFiles, "dashboard")
	if err != nil { // the directory is embedded at build time
		panic(err)
	}
	files := http.StripPrefix("/dashboard/", http.FileServer(http.FS(sub)))
	headers := func(c echo.Context) {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", dashboardPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
	}
	s.e.GET("/", func(c echo.Context) error {
		headers(c)
		page, err := fs.ReadFile(sub, "index.html")
		if err != nil {
			return err
		}
		return c.HTMLBlob(http.StatusOK, page)
	})
	s.e.GET("/dashboard/*", func(c echo.Context) error {
		headers(c)
		files.ServeHTTP(c.Response(), c.Request())
		return nil
	})
}
