package httpapi

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

func (s *Server) routes(auth echo.MiddlewareFunc) {
	read := s.limits.middleware(ClassStatus)
	infer := s.limits.middleware(ClassInference)
	wallet := s.limits.middleware(ClassWallet)

	v1 := s.e.Group("/api/v1")
	v1.GET("/health", s.health) // public: monitors need no token
	v1.GET("/status", s.status, read, auth)
	v1.GET("/peers", s.peers, read, auth)
	v1.GET("/layers", s.layers, read, auth)
	v1.GET("/network", s.network, read, auth)
	v1.GET("/config", s.config, read, auth)
	v1.PATCH("/config", s.patchConfig, read, auth)

	dht := v1.Group("/dht", read, auth)
	dht.GET("/routing-table", s.routingTable)
	dht.GET("/providers/:layer", s.providers)
	dht.GET("/peers/:id", s.findPeer)
	dht.GET("/coverage", s.coverage)

	v1.GET("/metrics", s.metrics, read, auth)
	v1.GET("/training/rounds", func(c echo.Context) error {
		return c.JSON(http.StatusOK, s.backend.TrainingRounds(c.Request().Context()))
	}, read, auth)
	v1.POST("/inference", s.inference, infer, auth)
	s.walletRoutes(v1.Group("/wallet", wallet, auth), v1, wallet, auth)
	s.taskRoutes(auth, infer, v1)
	s.modelRoutes(v1, read, infer, auth)
	s.openAIRoutes(infer, auth)
	s.insightRoutes(v1, read, wallet, auth)
	s.e.GET("/ws", s.ws) // authenticates with its first message (browsers cannot set headers)
	s.dashboardRoutes()
	tr := s.e.Group("/api/training", read)
	tr.GET("/global", func(c echo.Context) error {
		return c.JSON(http.StatusOK, s.backend.TrainingGlobal(c.Request().Context()))
	})
	tr.GET("/verify", func(c echo.Context) error {
		return c.JSON(http.StatusOK, s.backend.TrainingVerify(c.Request().Context()))
	})
}

func (s *Server) health(c echo.Context) error {
	h := s.backend.Health(c.Request().Context())
	status := http.StatusOK
	if !h.Healthy {
		status = http.StatusServiceUnavailable
	}
	return c.JSON(status, h)
}

func (s *Server) status(c echo.Context) error {
	return c.JSON(http.StatusOK, s.backend.Status(c.Request().Context()))
}

func (s *Server) peers(c echo.Context) error {
	return c.JSON(http.StatusOK, s.backend.Peers(c.Request().Context()))
}

func (s *Server) layers(c echo.Context) error {
	return c.JSON(http.StatusOK, s.backend.Layers(c.Request().Context()))
}

func (s *Server) network(c echo.Context) error {
	return c.JSON(http.StatusOK, s.backend.Network(c.Request().Context()))
}

func (s *Server) config(c echo.Context) error {
	return c.JSON(http.StatusOK, s.backend.Config(c.Request().Context()))
}

func (s *Server) patchConfig(c echo.Context) error {
	var p apitypes.ConfigPatch
	if err := decodeJSON(c, &p); err != nil {
		return err
	}
	res, err := s.backend.PatchConfig(c.Request().Context(), p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}

func (s *Server) routingTable(c echo.Context) error {
	return c.JSON(http.StatusOK, s.backend.RoutingTable(c.Request().Context()))
}

func (s *Server) providers(c echo.Context) error {
	layer, err := strconv.Atoi(c.Param("layer"))
	if err != nil {
		return apitypes.InvalidRequest("layer must be an integer", map[string]any{"layer": c.Param("layer")})
	}
	res, err := s.backend.Providers(c.Request().Context(), layer)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}

func (s *Server) findPeer(c echo.Context) error {
	res, err := s.backend.FindPeer(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}

func (s *Server) coverage(c echo.Context) error {
	return c.JSON(http.StatusOK, s.backend.Coverage(c.Request().Context()))
}

func (s *Server) metrics(c echo.Context) error {
	return c.JSON(http.StatusOK, s.backend.Metrics(c.Request().Context()))
}
