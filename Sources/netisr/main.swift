print("netisr")
