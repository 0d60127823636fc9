from infra.chaos.run import main

main()
