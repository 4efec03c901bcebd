package main

import (
	"fmt"

	"github.com/neuroshard/neuroshard/client"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
	"github.com/neuroshard/neuroshard/ledger"
	"github.com/neuroshard/neuroshard/ledger/neuro"
	"github.com/neuroshard/neuroshard/node"
	"github.com/urfave/cli/v2"
)

func walletCommand() *cli.Command {
	return &cli.Command{
		Name:  "wallet",
		Usage: "the node's NEURO wallet: balance, send, stake, unstake, history, proofs, address",
		Description: `The wallet's key is derived from the node's token, so the token is the wallet: keep it
secret. Every subcommand but address talks to the running node (--api, --token).

   neuroshard wallet balance
   neuroshard wallet send --to 0xabc... --amount 12.5 --memo "for the layers"
   neuroshard wallet stake --amount 100 --days 30
   neuroshard wallet history --limit 20`,
		Subcommands: []*cli.Command{
			clientAction("balance", "print the wallet's balances and stake", nil, func(c *cli.Context, api *client.Client) (any, func(), error) {
				b, err := api.Balance(c.Context)
				return b, func() {
					w := table(c.App.Writer)
					fmt.Fprintf(w, "Address\t%s\n", b.Address)
					fmt.Fprintf(w, "Available\t%s NEURO\n", b.Balances.Available)
					fmt.Fprintf(w, "Staked\t%s NEURO\n", b.Balances.Staked)
					fmt.Fprintf(w, "Pending\t%s NEURO\n", b.Balances.Pending)
					fmt.Fprintf(w, "Total\t%s NEURO\n", b.Balances.Total)
					if s := b.Staking; s != nil {
						fmt.Fprintf(w, "Stake\t%s NEURO for %d days (x%.2f), %s to %s\n", s.Amount, s.DurationDays, s.Multiplier, s.StartDate, s.UnlockDate)
					}
					w.Flush()
				}, err
			}),
			clientAction("send", "send NEURO to an address (a fee of 0.1% is burned)", []cli.Flag{
				&cli.StringFlag{Name: "to", Required: true, Usage: "recipient `ADDRESS` (0x...)"},
				&cli.StringFlag{Name: "amount", Required: true, Usage: "NEURO to send, e.g. 12.5"},
				&cli.StringFlag{Name: "memo", Usage: "a note that travels with the transaction"},
			}, func(c *cli.Context, api *client.Client) (any, func(), error) {
				amt, err := neuro.ParseAmount(c.String("amount"))
				if err != nil {
					return nil, nil, err
				}
				r, err := api.Send(c.Context, apitypes.SendRequest{To: c.String("to"), Amount: amt, Memo: c.String("memo")})
				return r, func() {
					fmt.Fprintf(c.App.Writer, "sent %s NEURO to %s (fee %s), transaction %s, %s\n", r.Amount, r.To, r.Fee, r.TransactionID, r.Status)
				}, err
			}),
			clientAction("stake", "stake NEURO for a number of days (longer locks earn a higher multiplier)", []cli.Flag{
				&cli.StringFlag{Name: "amount", Required: true, Usage: "NEURO to stake"},
				&cli.IntFlag{Name: "days", Value: 30, Usage: "lock duration in days"},
			}, func(c *cli.Context, api *client.Client) (any, func(), error) {
				amt, err := neuro.ParseAmount(c.String("amount"))
				if err != nil {
					return nil, nil, err
				}
				r, err := api.Stake(c.Context, apitypes.StakeRequest{Amount: amt, DurationDays: c.Int("days")})
				return r, func() {
					fmt.Fprintf(c.App.Writer, "staked: %s NEURO until %s (x%.2f); available %s, staked %s\n",
						r.Stake.Amount, r.Stake.UnlockDate, r.Stake.Multiplier, r.NewBalance.Available, r.NewBalance.Staked)
					if r.PeerID != "" {
						fmt.Fprintf(c.App.Writer, "the stake backs node %s (its reports weigh by it; a fraud proof against it burns half)\n", r.PeerID)
					}
				}, err
			}),
			clientAction("unstake", "unstake NEURO; it becomes available after the cooldown", []cli.Flag{
				&cli.StringFlag{Name: "amount", Required: true, Usage: "NEURO to unstake"},
			}, func(c *cli.Context, api *client.Client) (any, func(), error) {
				amt, err := neuro.ParseAmount(c.String("amount"))
				if err != nil {
					return nil, nil, err
				}
				r, err := api.Unstake(c.Context, apitypes.UnstakeRequest{Amount: amt})
				return r, func() {
					fmt.Fprintf(c.App.Writer, "unstaked %s NEURO; available on %s (%d days cooldown)\n", r.Unstake.Amount, r.Unstake.AvailableDate, r.Unstake.CooldownDays)
				}, err
			}),
			clientAction("history", "list the wallet's transactions, newest first", pageFlags(), func(c *cli.Context, api *client.Client) (any, func(), error) {
				r, err := api.Transactions(c.Context, c.Int("limit"), c.Int("offset"))
				return r, func() {
					w := table(c.App.Writer)
					fmt.Fprintln(w, "TIME\tTYPE\tAMOUNT\tFEE\tPEER\tID")
					for _, t := range r.Transactions {
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Timestamp, t.Type, t.Amount, t.Fee, t.To+t.From, t.ID)
					}
					fmt.Fprintf(w, "(%d of %d)\n", len(r.Transactions), r.Total)
					w.Flush()
				}, err
			}),
			clientAction("proofs", "list the proofs of work the wallet was rewarded for", pageFlags(), func(c *cli.Context, api *client.Client) (any, func(), error) {
				r, err := api.Proofs(c.Context, c.Int("limit"), c.Int("offset"))
				return r, func() {
					w := table(c.App.Writer)
					fmt.Fprintln(w, "TIME\tKIND\tLAYER\tUNITS\tREWARD\tID")
					for _, p := range r.Proofs {
						fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\t%s\n", p.Timestamp, p.Type, p.Layer, p.Units, p.Reward, p.ID)
					}
					fmt.Fprintf(w, "verified %d of %d submitted, %s NEURO in rewards\n", r.Stats.TotalVerified, r.Stats.TotalSubmitted, r.Stats.TotalReward)
					w.Flush()
				}, err
			}),
			{
				Name:  "address",
				Usage: "print the wallet address of a token (no node needed)",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "token", Usage: "wallet token (default: the token in --data-dir)", EnvVars: env("TOKEN")},
					&cli.StringFlag{Name: "data-dir", Value: node.DefaultDataDir(), Usage: "data dir to read the token from", EnvVars: env("DATA_DIR")},
				},
				Action: func(c *cli.Context) error {
					token, err := tokenOf(c)
					if err != nil {
						return fmt.Errorf("no --token and no token in %s: %w", c.String("data-dir"), err)
					}
					w, err := ledger.WalletFromToken(token)
					if err != nil {
						return err
					}
					fmt.Fprintln(c.App.Writer, w.Address())
					return nil
				},
			},
		},
	}
}

func pageFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "limit", Value: 20, Usage: "how many (1-100)"},
		&cli.IntFlag{Name: "offset", Value: 0, Usage: "skip this many of the newest"},
	}
}
